"""Helpers for the SLURM tests: the test cluster, Snakemake runs through the slurm profile, the
jobs of a run, and the dataset files a run produced.

Runs are wrapped in `timeout -s INT`: SIGINT makes Snakemake scancel its jobs and exit, whereas
SIGTERM makes it wait for every submitted job (shared/slurm/RECIPE.md, pitfall 11).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"  # the tests' config
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
SNAKEFILE = REPO / "workflow" / "Snakefile"
# The users' profile, then the overlay for the one-node test cluster (its keys replace those).
SLURM_PROFILES = (REPO / "profiles" / "slurm", REPO / "tests" / "slurm" / "profile")
LOCAL_PROFILES = (REPO / "profiles" / "local",)
# Columns that measure time, so differ between two runs of the same work.
TIMING_COLUMNS = ("seconds",)
# Stage fields (the status tables' JSON column) that are timings, e.g. detect's model_s.
TIMING_FIELD_SUFFIX = "_s"

T = TypeVar("T")


def cluster_unavailable_reason() -> str | None:
    """Why this machine cannot host the test cluster, or None if it can."""
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (it installs packages and starts daemons)"
    if shutil.which("apt-get") is None:
        return "the SLURM test cluster needs apt-get (Debian 12)"
    return None


def start_cluster() -> None:
    """Start (or confirm) the one-node cluster; raises with the script's output if it fails."""
    done = subprocess.run(
        ["bash", str(CLUSTER_SH), "start"], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh start failed:\n{done.stdout}\n{done.stderr}")


def wait_until(what: str, probe: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- Snakemake runs ---------------------------------------------------------------------------


@dataclass
class Run:
    """A Snakemake process started in the background; its output goes to `log`."""

    workdir: Path
    proc: subprocess.Popen
    log: Path
    started: float

    def wait(self, timeout: float = 900) -> int:
        return self.proc.wait(timeout=timeout)

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def slurm_run_id(self) -> str | None:
        """The run's UUID: every job of the run carries it as its SLURM job name."""
        found = re.search(r"SLURM run ID: (\S+)", self.output())
        return found.group(1) if found else None

    def snakemake_pid(self) -> int:
        """The Snakemake process itself (a child of `timeout`)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])


def snakemake_command(
    workdir: Path, args: list[str], profiles=SLURM_PROFILES, snakefile=SNAKEFILE, limit=600
) -> list[str]:
    profile_args = [arg for p in profiles for arg in ("--profile", str(p))]
    return [
        *("timeout", "-s", "INT", "-k", "60", str(limit)),
        *(sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)),
        *("--directory", str(workdir), *profile_args, *args),
    ]


STARTED: list[Run] = []


def start_snakemake(workdir: Path, *args: str, env: dict | None = None, **kwargs) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"snakemake-{time.monotonic_ns()}.out"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            snakemake_command(workdir, list(args), **kwargs),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    STARTED.append(Run(workdir, proc, log, time.monotonic()))
    return STARTED[-1]


def stop_leftovers() -> None:
    """SIGINT to runs still going (Snakemake then scancels its jobs), then scancel the jobs of
    every run started so far, which also catches orphans of a killed Snakemake."""
    for run in STARTED:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)  # `timeout` passes it on to Snakemake
            run.wait(timeout=120)
        if run_id := run.slurm_run_id():
            cancel_run(run_id)
    STARTED.clear()


def run_snakemake(workdir: Path, *args: str, **kwargs) -> Run:
    run = start_snakemake(workdir, *args, **kwargs)
    run.wait()
    return run


def assert_succeeded(run: Run) -> None:
    code = run.proc.returncode
    assert code == 0, f"snakemake exited {code}; last output:\n{run.output()[-6000:]}"


# --- SLURM jobs -------------------------------------------------------------------------------


def slurm(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def jobs_of(run_id: str) -> list[dict[str, str]]:
    """The run's jobs that squeue still lists: id, state and the plugin's comment (rule/group)."""
    out = slurm("squeue", "--noheader", "--states=all", "--name", run_id, "--format=%i|%T|%k")
    keys = ("id", "state", "comment")
    return [dict(zip(keys, line.split("|", 2), strict=True)) for line in out.splitlines()]


def running_job(run_id: str, needle: str) -> str | None:
    """The id of a RUNNING job of the run whose batch script (the Snakemake command, with its
    target jobs and wildcards) contains `needle`."""
    for job in jobs_of(run_id):
        if job["state"] == "RUNNING" and needle in batch_script(job["id"]):
            return job["id"]
    return None


def batch_script(job_id: str) -> str:
    done = subprocess.run(
        ["scontrol", "write", "batch_script", job_id, "-"], capture_output=True, text=True
    )
    return done.stdout  # empty once the job is gone


def kill_job_processes(job_id: str) -> int:
    """SIGKILL every process of a job, as a node crash would. `scancel -s KILL` is not enough:
    the job step still cleans up its outputs (RECIPE.md, pitfall 15)."""
    killed = 0
    for line in slurm("scontrol", "listpids", job_id).splitlines()[1:]:
        pid = int(line.split()[0])
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def cancel_run(run_id: str) -> None:
    """scancel every job of a run and wait until none is left running or pending."""
    subprocess.run(["scancel", "--name", run_id], check=True, timeout=60)

    def settled() -> bool:
        active = ("PENDING", "RUNNING", "COMPLETING", "REQUEUED")
        return not [j for j in jobs_of(run_id) if j["state"] in active]

    wait_until(f"the jobs of run {run_id} to end", settled, timeout=60, interval=0.5)


# --- the demo workflow and its outputs --------------------------------------------------------


def demo_workdir(path: Path) -> Path:
    """A working directory for one run of the real workflow (its own results/ and .snakemake/)."""
    (path / "config").mkdir(parents=True)
    shutil.copy(TEST_CONFIG, path / "config" / "config.yaml")
    return path


def dataset_files(workdir: Path, dataset: str = "demo") -> set[str]:
    """Every file a run left under results/{dataset}, except logs (they hold times and pids)."""
    root = workdir / "results" / dataset
    return {
        str(f.relative_to(root))
        for f in root.rglob("*")
        if f.is_file() and "logs" not in f.relative_to(root).parts
    }


def dataset_tables(workdir: Path, dataset: str = "demo") -> dict[str, pd.DataFrame]:
    """Every parquet table of the dataset, timing columns dropped, rows in a canonical order."""
    root = workdir / "results" / dataset
    tables = {}
    for path in sorted(root.rglob("*.parquet")):
        if "timings" in path.relative_to(root).parts:
            continue  # how long each item took: measured, documented as not reproducible
        frame = pd.read_parquet(path)
        frame = frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])
        if "fields" in frame.columns:
            frame["fields"] = frame["fields"].map(without_timings)
        frame = frame.map(hashable)
        tables[str(path.relative_to(root))] = canonical_rows(frame)
    return tables


def without_timings(fields: str) -> str:
    """A status row's fields JSON without its timing entries (they differ run to run)."""
    values = json.loads(fields) if fields else {}
    kept = {k: v for k, v in values.items() if not k.endswith(TIMING_FIELD_SUFFIX)}
    return json.dumps(kept, sort_keys=True)


def hashable(value):
    """Lists and arrays (parquet list columns) as tuples, so rows compare and sort."""
    return tuple(value) if isinstance(value, list | tuple | np.ndarray) else value


def canonical_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def assert_same_dataset(actual: Path, expected: Path) -> None:
    """Two runs produced the same dataset: same files, same table contents."""
    assert dataset_files(actual) == dataset_files(expected)
    mine, theirs = dataset_tables(actual), dataset_tables(expected)
    assert mine.keys() == theirs.keys()
    for name, frame in mine.items():
        pd.testing.assert_frame_equal(frame, theirs[name], obj=name)
