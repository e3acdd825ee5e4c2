"""Config loading and validation against the schema, ``vidmine/schemas/config.schema.yaml``
(package data, so an installed vidmine validates without a checkout; the workflow's
``workflow/schemas/config.schema.yaml`` is a link to it).

The schema fills in defaults, so every stage reads a complete settings dict. A wrong key or value
stops the run with one line that names the key, because a researcher launching 1,000 shard jobs
needs to see what to fix, not a traceback.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

PACKAGE_ROOT = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_ROOT / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value that the schema rejects; its message is one line naming the key."""


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that validation also fills ``default`` values."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _error_line(error: ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - allowed)
        if unknown:
            prefix = f"{key}." if error.absolute_path else ""
            allowed_list = ", ".join(sorted(allowed))
            return f"config key {prefix}{unknown[0]}: unknown key (allowed: {allowed_list})"
    return f"config key {key}: {error.message}"


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled in; raise ``ConfigError``."""
    schema = schema or load_schema()
    filled = copy.deepcopy(config)
    validator_class = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = list(validator_class(schema).iter_errors(filled))
    if errors:
        raise ConfigError(_error_line(best_match(errors)))
    for dataset in (filled.get("datasets") or {}).values():
        _fill_file_url_roots(dataset)
    return filled


def _fill_file_url_roots(dataset: dict[str, Any]) -> None:
    """A dataset that allows file URLs but names no roots gets its source's own folder (a
    local folder, the demo's data), so a manifest row cannot point anywhere else."""
    download = dataset.get("download")
    if not download or not download.get("allow_file_urls") or download.get("file_url_roots"):
        return
    from vidmine.sources import SourceError, default_file_roots

    try:
        download["file_url_roots"] = default_file_roots(dataset.get("source") or {})
    except SourceError as exc:
        raise ConfigError(f"config key download.file_url_roots: {exc}") from exc


def missing_inputs(config: dict[str, Any]) -> list[str]:
    """One line per source file or folder a dataset names that does not exist (relative paths
    from the working directory), so a typo stops the run before any job, not inside one."""
    from vidmine.sources import missing_source_files

    return [
        f"dataset {name}: {problem}"
        for name, dataset in sorted((config.get("datasets") or {}).items())
        for problem in missing_source_files(dataset.get("source") or {})
    ]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}".splitlines()[0]) from exc
    return validate_config(raw)


def settings_hash(settings: dict[str, Any]) -> str:
    """A short digest of the settings that decide an item's result (stored per item)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
