"""The package as a user installs it: a wheel (not this checkout) that carries what it reads at
run time, its licence, and says its version."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_schema_and_the_licence(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "vidmine/schemas/config.schema.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names[-10:]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert "MIT License" in (REPO / "LICENSE").read_text()


def test_an_installed_wheel_validates_a_config_and_says_its_version(wheel, tmp_path):
    """Installed into its own folder (the dependencies come from this interpreter), run from a
    folder that is not the checkout: no path back into the source tree."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import vidmine; print(vidmine.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(target))
    config = tmp_path / "config.yaml"
    config.write_text("datasets:\n  d:\n    source: {type: demo}\n")
    checked = subprocess.run(
        [sys.executable, "-m", "vidmine", "check-config", str(config)],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    version = subprocess.run(
        [sys.executable, "-m", "vidmine", "--version"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "vidmine 0.1.0"
