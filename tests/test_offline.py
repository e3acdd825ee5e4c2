"""Compute stages never reach the network: once the demo's videos are downloaded (and, for a
dataset with weights, `vidmine fetch-weights` filled the cache), the rest of the workflow runs in
a network namespace with no interface up (`unshare -n`), as on an offline compute node."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"  # the tests' config
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(REPO / "profiles" / "local"),
        *args,
    ]  # fmt: skip
    if offline:
        command = ["unshare", "-n", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is missing")
def test_everything_after_download_runs_without_network(tmp_path):
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    (tmp_path / "config").mkdir()
    shutil.copy(TEST_CONFIG, tmp_path / "config" / "config.yaml")
    downloads = [f"results/demo/status/download/s0000{i}.parquet" for i in range(2)]
    online = snakemake(tmp_path, *downloads)
    assert online.returncode == 0, online.stderr[-3000:]
    check = subprocess.run(
        ["unshare", "-n", sys.executable, "-c",
         "import socket; s = socket.socket(); s.settimeout(2); "
         "print(s.connect_ex(('127.0.0.1', 9)), s.connect_ex(('1.1.1.1', 80)))"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.stdout.split()[1] != "0"  # really no route out
    offline = snakemake(tmp_path, "all", offline=True)
    assert offline.returncode == 0, offline.stderr[-5000:]
    root = tmp_path / "results" / "demo"
    stats = offline.stderr.split("Job stats:")[1].split("total")[0]
    assert not re.search(r"^download\s+\d", stats, re.MULTILINE), stats  # nothing re-downloaded
    released = pd.read_parquet(root / "released_clips.parquet")
    tracks = pd.read_parquet(root / "tracks.parquet")
    assert len(released) > 0 and (tracks.class_name == "person").any()
    assert (root / "export" / "index.parquet").is_file()
    assert (root / "lifter" / "model.pt").is_file()
