"""The slurm profile on a real one-node SLURM cluster (tests/slurm/cluster.sh): real sbatch jobs,
real requeues, real kills. Each test prints its wall time.

Scenarios (issue 8): a toy workflow per status command; GPU and site values reaching sbatch; the
whole demo through SLURM equal to a local run; then, on the shard stages up to the filter (the
same targets run locally are the reference), a requeued shard job, a crash of Snakemake and of a
job followed by --unlock and --rerun-incomplete, and a shard job killed mid-shard that resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import DEMO_THROUGH_FILTER

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
import harness as h  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SHARD = "s00000"  # the demo's first shard: carphone, then bikes
# The requeue, crash and kill scenarios hit the shard chain (download, probe, scene cut: one
# group job), so they run the demo up to the filter's status tables and compare that against the
# same targets run locally; the whole demo through SLURM is compared once, in
# test_demo_on_slurm_equals_local_run. (Each whole run through SLURM took ~400 s.)
WHOLE_DEMO_LIMIT = 1500  # seconds before `timeout` stops Snakemake (the scenarios keep 600)
SHARD_TARGETS = DEMO_THROUGH_FILTER


def report(config: pytest.Config, what: str, seconds: float) -> None:
    """Print a wall time past pytest's output capture: the issue asks for each scenario's."""
    plugins = config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        plugins.get_plugin("terminalreporter").write_line(f"[slurm timing] {what}: {seconds:.1f} s")


@pytest.fixture(scope="session")
def slurm_cluster(pytestconfig):
    """The test cluster, started by the test itself. Outside CI a machine that cannot host it
    (not root, no apt) skips; in CI every SLURM test must run."""
    reason = h.cluster_unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the SLURM tests, but {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    h.start_cluster()
    report(pytestconfig, "cluster start", time.monotonic() - started)


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory, pytestconfig) -> Path:
    """The demo run on this machine with the local profile: the reference outputs."""
    run = h.run_snakemake(
        h.demo_workdir(tmp_path_factory.mktemp("local")), "all", profiles=h.LOCAL_PROFILES
    )
    h.assert_succeeded(run)
    report(pytestconfig, "demo, local profile (reference)", run.seconds())
    return run.workdir


@pytest.fixture(scope="module")
def local_shards(tmp_path_factory, pytestconfig) -> Path:
    """The shard stages up to the filter run locally: the reference for the scenarios."""
    workdir = h.demo_workdir(tmp_path_factory.mktemp("local_shards"))
    run = h.run_snakemake(workdir, *SHARD_TARGETS, profiles=h.LOCAL_PROFILES)
    h.assert_succeeded(run)
    report(pytestconfig, "shard stages, local profile (reference)", run.seconds())
    return run.workdir


@pytest.fixture(autouse=True)
def no_leftover_jobs():
    """A failing test must not leave Snakemake or its jobs running into the next test."""
    yield
    h.stop_leftovers()


def timed(pytestconfig, what: str, run: h.Run, timeout: float = 900) -> h.Run:
    run.wait(timeout)
    report(pytestconfig, what, run.seconds())
    return run


# --- toy workflow: the profile itself -------------------------------------------------------

TOY = """
SHARDS = ["s0", "s1"]

rule all:
    input: "out/all.txt"

rule download:
    output: "out/{shard}.dl"
    group: "shard_video"
    shell: "echo download $SLURM_JOB_ID > {output}"

rule probe:
    input: "out/{shard}.dl"
    output: "out/{shard}.pr"
    group: "shard_video"
    shell: "echo probe $SLURM_JOB_ID > {output}"

rule scenecut:
    input: "out/{shard}.pr"
    output: "out/{shard}.sc"
    group: "shard_video"
    shell: "echo scenecut $SLURM_JOB_ID > {output}"

rule gather:
    input: expand("out/{shard}.sc", shard=SHARDS)
    output: "out/all.txt"
    shell: "echo gather $SLURM_JOB_ID > {output}"

rule train_lifter:
    output: "model.pt"
    shell: "touch {output}"
"""


def write_toy(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Snakefile").write_text(textwrap.dedent(TOY))
    return path / "Snakefile"


def job_ids(workdir: Path, pattern: str) -> dict[str, str]:
    """File name -> the SLURM job id its rule wrote into it."""
    return {f.name: f.read_text().split()[1] for f in sorted((workdir / "out").glob(pattern))}


@pytest.mark.parametrize("status_command", ["squeue", "sacct"])
def test_toy_workflow_runs_as_sbatch_jobs(slurm_cluster, tmp_path, pytestconfig, status_command):
    """Every rule runs inside a SLURM job; a shard's chain is one job (group shard_video); both
    status commands see the jobs through (sacct needs slurmdbd, which the cluster runs)."""
    snakefile = write_toy(tmp_path)
    run = h.start_snakemake(
        tmp_path, "all", "--slurm-status-command", status_command, snakefile=snakefile
    )
    h.assert_succeeded(timed(pytestconfig, f"toy workflow, {status_command}", run))

    chain = job_ids(tmp_path, "s0.*") | job_ids(tmp_path, "s1.*")
    assert all(chain.values()), "a rule ran outside SLURM"
    for shard in ("s0", "s1"):
        assert len({chain[f"{shard}.{s}"] for s in ("dl", "pr", "sc")}) == 1, chain
    assert chain["s0.dl"] != chain["s1.dl"]
    gather = job_ids(tmp_path, "all.txt")["all.txt"]
    accounted = h.slurm(
        "sacct", "-n", "-X", "-P", "--name", run.slurm_run_id(), "-o", "JobID,State"
    )
    states = dict(line.split("|") for line in accounted.splitlines())
    assert set(states) == {chain["s0.dl"], chain["s1.dl"], gather}
    assert set(states.values()) == {"COMPLETED"}


def test_gpu_request_and_site_values_reach_sbatch(slurm_cluster, tmp_path, pytestconfig):
    """The users' profile alone: train_lifter asks for a GPU, the partition and account come from
    the environment. The test node has no GPU, so sbatch must refuse the job."""
    snakefile = write_toy(tmp_path)
    run = h.start_snakemake(
        tmp_path,
        "model.pt",
        *("--seconds-between-status-checks", "2"),  # exit soon after the refusal
        *("--slurm-init-seconds-before-status-checks", "2"),
        snakefile=snakefile,
        profiles=h.SLURM_PROFILES[:1],
        env={"VIDMINE_SLURM_PARTITION": "urgent", "VIDMINE_SLURM_ACCOUNT": "root"},
    )
    timed(pytestconfig, "GPU request refused", run)
    out = run.output()
    assert run.proc.returncode != 0
    assert "--gpus=1" in out and "-p urgent" in out and "-A root" in out, out[-3000:]
    assert "Invalid generic resource" in out
    assert not (tmp_path / "model.pt").exists()


# --- the demo workflow -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_demo(slurm_cluster, local_demo, tmp_path_factory, pytestconfig) -> h.Run:
    # The whole demo is about 60 sbatch jobs, each waiting on the executor's status polls (the
    # lifter's and the embedding's chains are sequential): up to ~10 min on a busy 2-core machine.
    workdir = h.demo_workdir(tmp_path_factory.mktemp("slurm"))
    run = h.start_snakemake(workdir, "all", limit=WHOLE_DEMO_LIMIT)
    h.assert_succeeded(timed(pytestconfig, "demo, slurm profile", run, WHOLE_DEMO_LIMIT + 120))
    return run


def test_demo_on_slurm_equals_local_run(slurm_demo, local_demo):
    assert "SLURM run ID" in slurm_demo.output()
    assert "slurm_logs" in slurm_demo.output()  # jobs went through sbatch, not local
    h.assert_same_dataset(slurm_demo.workdir, local_demo)


def journal(workdir: Path, stage: str = "scenecut", shard: str = SHARD) -> list[dict]:
    path = workdir / "results" / "demo" / "status" / stage / f"{shard}.journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def shard_items(workdir: Path, shard: str = SHARD) -> list[str]:
    manifest = pd.read_parquet(workdir / "results" / "demo" / "manifest.parquet")
    return manifest.loc[manifest["shard"] == shard, "video_id"].tolist()


def shard_job(run: h.Run, shard: str = SHARD) -> str:
    """The running job of a shard's chain (download, probe, scene cut: one group job)."""
    return h.wait_until(
        f"a running job of shard {shard}",
        lambda: run.slurm_run_id() and h.running_job(run.slurm_run_id(), f"shard={shard}"),
        timeout=240,
        interval=0.2,
    )


def mid_shard(run: h.Run) -> list[dict]:
    """Wait until the shard's scene cut has finished its first video, not yet all of them."""
    return h.wait_until(
        "the first finished video of the scene cut",
        lambda: journal(run.workdir),
        timeout=300,
        interval=0.05,
    )


def test_requeued_shard_job_finishes_with_identical_outputs(
    slurm_cluster, local_shards, tmp_path, pytestconfig
):
    """`scontrol requeue` is what preemption does to a job: SLURM kills it, holds it ~120 s,
    starts it again under the same id. Snakemake keeps waiting; the run must succeed."""
    run = h.start_snakemake(h.demo_workdir(tmp_path / "run"), *SHARD_TARGETS)
    job = shard_job(run)
    h.slurm("scontrol", "requeue", job)
    timed(pytestconfig, "demo with a requeued shard job", run)
    h.assert_succeeded(run)
    assert "Restarts=1" in h.slurm("scontrol", "show", "job", job)
    h.assert_same_dataset(run.workdir, local_shards)


def test_crash_leaves_lock_then_unlock_and_rerun_incomplete_finish(
    slurm_cluster, local_shards, tmp_path, pytestconfig
):
    """SIGKILL of Snakemake and of a running job mid-shard (a crashed login node and compute
    node). Partial work, incomplete markers and the lock stay; after scancel of the orphans
    and --unlock, the profile's --rerun-incomplete finishes the same dataset."""
    workdir = h.demo_workdir(tmp_path / "run")
    started = time.monotonic()
    run = h.start_snakemake(workdir, *SHARD_TARGETS)
    job = shard_job(run)
    mid_shard(run)
    os.kill(run.snakemake_pid(), signal.SIGKILL)
    assert h.kill_job_processes(job) > 0
    run.wait(timeout=120)

    status = workdir / "results" / "demo" / "status" / "scenecut" / f"{SHARD}.parquet"
    assert journal(workdir) and not status.exists(), "the shard should be left half done"
    assert list((workdir / ".snakemake" / "locks").iterdir()), "the lock should remain"
    assert list((workdir / ".snakemake" / "incomplete").iterdir()), "markers should remain"
    h.cancel_run(run.slurm_run_id())  # orphans would otherwise write the same files twice

    locked = h.run_snakemake(workdir, *SHARD_TARGETS)
    assert locked.proc.returncode != 0 and "locked" in locked.output().lower()
    h.assert_succeeded(h.run_snakemake(workdir, "--unlock"))
    rerun = timed(pytestconfig, "rerun after crash", h.start_snakemake(workdir, *SHARD_TARGETS))
    h.assert_succeeded(rerun)
    report(pytestconfig, "crash scenario in all", time.monotonic() - started)
    h.assert_same_dataset(workdir, local_shards)  # also: no partial file is left behind


def file_identity(workdir: Path, outputs: list[str]) -> dict[str, tuple[int, int]]:
    base = workdir / "results" / "demo"
    return {out: (os.stat(base / out).st_ino, os.stat(base / out).st_mtime_ns) for out in outputs}


def test_shard_job_killed_mid_shard_resumes_without_redoing_videos(
    slurm_cluster, local_shards, tmp_path, pytestconfig
):
    """SIGKILL of a shard job's processes after its first video: the profile's retry submits it
    again, and the shard runner reuses the finished video (same journal entry, same files)."""
    run = h.start_snakemake(h.demo_workdir(tmp_path / "run"), *SHARD_TARGETS)
    job = shard_job(run)
    first = mid_shard(run)
    before = file_identity(run.workdir, first[0]["outputs"])
    h.kill_job_processes(job)
    assert len(journal(run.workdir)) < len(shard_items(run.workdir)), "killed too late"
    timed(pytestconfig, "demo with a shard job killed mid-shard", run)
    h.assert_succeeded(run)
    assert "Trying to restart job" in run.output()  # the profile's retries: 1 took it up

    after = journal(run.workdir)
    assert sorted(e["id"] for e in after) == sorted(shard_items(run.workdir)), "a video was redone"
    assert after[0] == first[0]
    assert file_identity(run.workdir, first[0]["outputs"]) == before
    timings = pd.read_parquet(
        run.workdir / "results/demo/status/scenecut/timings" / f"{SHARD}.parquet"
    )
    reused = timings.set_index("id").loc[first[0]["id"], "seconds"]
    assert reused == first[0]["seconds"]  # the journal's entry, not a second measurement
    h.assert_same_dataset(run.workdir, local_shards)


def test_cluster_start_is_idempotent_and_quick(slurm_cluster, pytestconfig):
    started = time.monotonic()
    h.start_cluster()
    seconds = time.monotonic() - started
    report(pytestconfig, "cluster start when already up", seconds)
    assert seconds < 10
    done = subprocess.run(["bash", str(h.CLUSTER_SH), "status"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_downloads_on_the_submit_host_run_outside_slurm_and_the_rest_inside(
    slurm_cluster, tmp_path, pytestconfig
):
    """`downloads_on_submit_host: true`: the download rule runs in the Snakemake process's host
    (no sbatch job), the shard's next stages still go through sbatch."""
    workdir = h.demo_workdir(tmp_path)
    config = workdir / "config" / "config.yaml"
    config.write_text("downloads_on_submit_host: true\n" + config.read_text())
    downloads = [f"results/demo/status/download/s0000{i}.parquet" for i in range(2)]
    run = h.start_snakemake(workdir, *downloads)
    h.assert_succeeded(timed(pytestconfig, "downloads on the submit host", run))
    assert run.output().count("localrule download:") == 2
    accounted = h.slurm("sacct", "-n", "-X", "-P", "--name", run.slurm_run_id(), "-o", "JobID")
    assert len(accounted.split()) == 1, accounted  # the manifest's job only
    probes = [f"results/demo/status/probe/s0000{i}.parquet" for i in range(2)]
    run = h.start_snakemake(workdir, *probes)
    h.assert_succeeded(timed(pytestconfig, "probe after local downloads", run))
    accounted = h.slurm("sacct", "-n", "-X", "-P", "--name", run.slurm_run_id(), "-o", "JobID")
    assert len(accounted.split()) == 2  # one sbatch job per shard, downloads not redone
