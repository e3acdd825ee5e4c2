import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidmine.config import ConfigError, load_config, settings_hash, validate_config

REPO = Path(__file__).resolve().parent.parent


def demo(**extra):
    return {"datasets": {"demo": {"source": {"type": "demo"}, **extra}}}


@pytest.mark.parametrize("path", ["config/config.yaml", ".test/config/config.yaml"])
def test_project_config_is_valid_and_filled_with_defaults(path):
    config = load_config(REPO / path)
    demo_cfg = config["datasets"]["demo"]
    assert demo_cfg["download"]["allow_file_urls"] is True
    assert demo_cfg["probe"]["min_frames"] == 2  # a default from the schema
    assert demo_cfg["scenecut"]["detector"] == "adaptive"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (demo(shard_size=0), "config key datasets.demo.shard_size: 0 is less than the minimum"),
        (demo(shardsize=3), "config key datasets.demo.shardsize: unknown key"),
        (demo(scenecut={"detector": "x"}), "config key datasets.demo.scenecut.detector:"),
        (demo(download={"retries": "3"}), "config key datasets.demo.download.retries:"),
        ({"datasets": {"d": {"source": {"type": "urls"}}}}, "datasets.d.source: 'path' is a"),
        (
            {"datasets": {"d": {"source": {"type": "urls", "path": "a", "x": 1}}}},
            "source.x: unknown",
        ),
        ({"datasets": {"bad name": {"source": {"type": "demo"}}}}, "config key datasets:"),
        ({}, "'datasets' is a required property"),
    ],
)
def test_wrong_key_or_value_is_one_line_naming_the_key(config, expected):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_validation_does_not_modify_the_input():
    config = demo()
    validate_config(config)
    assert config == demo()


def test_settings_hash_is_stable_and_order_free():
    assert settings_hash({"a": 1, "b": 2}) == settings_hash({"b": 2, "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


def test_cli_check_config_reports_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(demo(shard_size=-1)))
    run = subprocess.run(
        [sys.executable, "-m", "vidmine", "check-config", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "datasets.demo.shard_size" in run.stderr


def test_check_config_names_a_missing_source_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("datasets:\n  k:\n    source: {type: kinetics, path: nowhere.csv}\n")
    run = subprocess.run(
        [sys.executable, "-m", "vidmine", "check-config", str(config)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == f"{config}: dataset k: source.path: no such file: nowhere.csv"


def test_embed_section_lists_exactly_the_fields_of_its_dataclasses():
    """Each sub-section of embed: is its dataclass's fields, so a typo stops check-config."""
    import dataclasses

    from vidmine.config import load_schema
    from vidmine.embed.config import SECTIONS, WORKFLOW_KEYS, EvaluateConfig
    from vidmine.embed.student import StudentConfig
    from vidmine.embed.teacher import TeacherConfig
    from vidmine.lifter.config import DataConfig

    embed = load_schema()["$defs"]["embed"]["properties"]
    assert set(embed) == set(SECTIONS) | set(WORKFLOW_KEYS)
    classes = {
        "teacher": TeacherConfig,
        "teacher_data": DataConfig,
        "student": StudentConfig,
        "evaluate": EvaluateConfig,
    }
    for name, cls in classes.items():
        assert set(embed[name]["properties"]) == {f.name for f in dataclasses.fields(cls)}, name
    demo = {"source": {"type": "demo"}}
    with pytest.raises(ConfigError, match=r"^config key datasets.d.embed.teacher.epocs: unknown"):
        validate_config({"datasets": {"d": {**demo, "embed": {"teacher": {"epocs": 5}}}}})
    with pytest.raises(ConfigError, match=r"datasets.d.embed.teacher_data.source"):
        validate_config(
            {"datasets": {"d": {**demo, "embed": {"teacher_data": {"source": "youtube"}}}}}
        )


def test_lifter_section_is_in_the_schema_and_matches_the_trainer():
    """The schema lists exactly the trainer's fields (plus the workflow's keys), so a typo
    stops check-config with one line instead of failing inside the training job."""
    import dataclasses

    from vidmine.config import load_schema
    from vidmine.lifter.cli import WORKFLOW_KEYS
    from vidmine.lifter.config import SETTINGS_ALIASES, DataConfig, TrainConfig

    listed = set(load_schema()["$defs"]["lifter"]["properties"])
    renamed = {v: k for k, v in SETTINGS_ALIASES.items()}
    fields = {
        renamed.get(f.name, f.name)
        for c in (DataConfig, TrainConfig)
        for f in dataclasses.fields(c)
    }
    assert listed == fields | WORKFLOW_KEYS
    with pytest.raises(ConfigError, match=r"^config key datasets.d.lifter.epocs: unknown key"):
        validate_config({"datasets": {"d": {"source": {"type": "demo"}, "lifter": {"epocs": 5}}}})
    with pytest.raises(ConfigError, match=r"datasets.d.lifter.data"):
        validate_config({"datasets": {"d": {"source": {"type": "demo"}, "lifter": {"data": "x"}}}})
