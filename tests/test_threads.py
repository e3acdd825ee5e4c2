"""A job's thread budget holds: with ``threads: 1`` a stage's process tree (OpenVINO, OpenCV,
the x264 encoder it starts) uses about one core, where without a budget it uses more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vidmine.threads import limit_threads, thread_budget

# Blurs bikes (640x272, 250 frames) twice and prints the process tree's CPU seconds per second.
JOB = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    threads = int(sys.argv[2])
    if threads:
        from vidmine.threads import limit_threads
        limit_threads(threads)
    from conftest import clip_item, dataset_settings
    from vidmine.layout import DatasetLayout
    from vidmine.stages.blur.stage import BlurStage
    layout = DatasetLayout(Path(sys.argv[4]), "d")
    stage = BlurStage(layout, "s0", dataset_settings()["blur"])
    started = time.monotonic()
    for copy in range(2):
        result = stage.process(clip_item(Path(sys.argv[1]), f"bikes-c00{copy}"))
        assert result.status == "ok", result.reason
    wall = time.monotonic() - started
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in used)
    from vidmine.frames import x264_args
    import os
    print(json.dumps({"cores": cpu / wall, "wall": wall, "cpus": len(os.sched_getaffinity(0)),
                      "x264": x264_args(18, "veryfast")}))
    """
)


def blur_job(demo_videos, tmp_path, threads: int) -> dict:
    tests = os.path.dirname(__file__)
    run = subprocess.run(
        [sys.executable, "-c", JOB, str(demo_videos["bikes"]), str(threads), tests,
         str(tmp_path / f"results-{threads}")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell 1 from many")
def test_threads_1_keeps_the_stage_near_one_core(demo_videos, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDMINE_CPU_LOCKS", str(tmp_path / "locks"))
    one = blur_job(demo_videos, tmp_path, 1)
    unbounded = blur_job(demo_videos, tmp_path, 0)
    print(
        f"blur with threads=1: {one['cores']:.2f} cores; without a budget: "
        f"{unbounded['cores']:.2f} cores (on a busy machine the second is lower)"
    )
    assert one["cpus"] == 1 and one["x264"][-2:] == ["-threads", "1"]
    assert unbounded["cpus"] == len(os.sched_getaffinity(0)) and "-threads" not in unbounded["x264"]
    assert one["cores"] <= 1.1


def test_limit_threads_sets_the_budget_for_children(monkeypatch, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    from vidmine.threads import BUDGET_VARIABLE, THREAD_VARIABLES

    for name in (*THREAD_VARIABLES, BUDGET_VARIABLE):  # restored after the test
        monkeypatch.setenv(name, "unset")
    monkeypatch.setenv("VIDMINE_CPU_LOCKS", str(tmp_path / "locks"))
    try:
        assert limit_threads(1) == cpus[:1]
        assert thread_budget() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert child.stdout.strip() == "1"
    finally:
        os.sched_setaffinity(0, cpus)
    with pytest.raises(ValueError):
        limit_threads(0)


def test_two_jobs_of_one_thread_claim_two_cpus(tmp_path):
    """On one machine, jobs started side by side by Snakemake do not pile onto one CPU."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    job = (
        "import os, sys, time; sys.path.insert(0, sys.argv[1]); "
        "from vidmine.threads import limit_threads; "
        "print(limit_threads(1)[0], flush=True); time.sleep(3)"
    )
    env = {**os.environ, "VIDMINE_CPU_LOCKS": str(tmp_path / "locks")}
    src = str(Path(__file__).resolve().parent.parent / "src")
    jobs = [
        subprocess.Popen([sys.executable, "-c", job, src], stdout=subprocess.PIPE, text=True,
                         env=env)
        for _ in range(2)
    ]  # fmt: skip
    cpus = {int(p.stdout.readline()) for p in jobs}
    for p in jobs:
        p.wait(timeout=30)
    assert len(cpus) == 2
