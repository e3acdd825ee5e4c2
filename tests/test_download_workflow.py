"""Downloads as the workflow runs them: a global cap on concurrent download jobs (the profiles'
``downloads`` resource). Downloads on the submitting host (``downloads_on_submit_host``) are
tested on the SLURM cluster (tests/test_slurm.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import VideoServer

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def write_dataset(workdir: Path, http_server: str) -> None:
    """Four shards of one slowly served video each (the carphone file under four names)."""
    urls = [f"{http_server}/slow/carphone.mp4?copy={i}" for i in range(4)]
    (workdir / "urls.txt").write_text("\n".join(urls) + "\n")
    config = {
        "datasets": {
            "d": {
                "source": {"type": "urls", "path": "urls.txt"},
                "shard_size": 1,
                "download": {"socket_timeout": 10},
            }
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def run_downloads(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s", str(REPO / "workflow" / "Snakefile"),
        "--configfile", str(workdir / "config.yaml"),
        "--directory", str(workdir),
        "--profile", str(REPO / "profiles" / "local"),
        "--cores", "4",
        *(args or ("results/d/download_report.parquet",)),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return run


@pytest.mark.parametrize("cap", [1, 4])
def test_the_downloads_resource_caps_concurrent_download_jobs(tmp_path, http_server, cap):
    write_dataset(tmp_path, http_server)
    VideoServer.most_slow_at_once = 0
    VideoServer.chunk_delay = 0.25  # carphone's 160 kB in 3 chunks: about 0.75 s a download
    try:
        run_downloads(
            tmp_path, "results/d/download_report.parquet", "--resources", f"downloads={cap}"
        )
    finally:
        VideoServer.chunk_delay = 0.05
    report = pd.read_parquet(tmp_path / "results" / "d" / "download_report.parquet")
    assert (report.status == "ok").all() and len(report) == 4
    if cap == 1:
        assert VideoServer.most_slow_at_once == 1
    else:  # the control: without the cap, shards do download at the same time
        assert VideoServer.most_slow_at_once > 1
