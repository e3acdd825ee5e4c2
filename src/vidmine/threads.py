"""One CPU budget per job: the rule's ``threads``, obeyed by every library a stage runs.

SLURM gives a shard job ``cpus_per_task = threads`` CPUs, but OpenVINO, OpenCV, x264, MediaPipe
(XNNPACK) and torch each start a thread per core they see, and they see the whole node. So the
job's process pins itself to ``threads`` of the CPUs it may use (``sched_setaffinity``: every
thread of every library, and every ffmpeg child, stays on them) and tells each library its
budget, so that it does not oversubscribe those CPUs either: the OpenMP/BLAS variables (torch,
numpy) and OpenCV's before they are imported, ``cv2.setNumThreads`` and
``torch.set_num_threads`` when they already are, and ``thread_budget()`` for the code that
starts ffmpeg (``-threads``) or compiles an OpenVINO model (``INFERENCE_NUM_THREADS``).
MediaPipe has no thread setting; the affinity alone bounds it.

Which CPUs: on SLURM a job's affinity already is its allocation. On one machine every job sees
all CPUs, so jobs claim theirs with a lock file per CPU (``$VIDMINE_CPU_LOCKS``, default
``/tmp/vidmine-cpu-locks``; ``flock``, released by the kernel when the process ends): two jobs
of one thread each land on two CPUs, not both on the first. When every CPU is claimed (more
jobs than CPUs), the job keeps the CPUs it was given and only the library settings hold.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)
BUDGET_VARIABLE = "VIDMINE_THREADS"


def limit_threads(threads: int) -> list[int]:
    """Confine this process (and what it starts from now on) to ``threads`` CPUs; returns the
    CPUs it now runs on."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    for name in (*THREAD_VARIABLES, BUDGET_VARIABLE):
        os.environ[name] = str(threads)
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        claimed = claim_cpus(cpus, threads)
        if claimed:
            cpus = claimed
            os.sched_setaffinity(0, cpus)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return cpus


_claims: list[int] = []  # open lock files: held for the life of the process


def claim_cpus(cpus: list[int], count: int) -> list[int]:
    """``count`` of ``cpus`` that no other vidmine process on this machine holds, or [] if
    there are not that many free."""
    import fcntl

    folder = Path(os.environ.get("VIDMINE_CPU_LOCKS", "/tmp/vidmine-cpu-locks"))
    folder.mkdir(parents=True, exist_ok=True)
    claimed, handles = [], []
    for cpu in cpus:
        handle = os.open(folder / f"cpu{cpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            continue
        claimed.append(cpu)
        handles.append(handle)
        if len(claimed) == count:
            _claims.extend(handles)
            return claimed
    for handle in handles:
        os.close(handle)
    return []


def thread_budget() -> int | None:
    """The job's thread budget, when ``limit_threads`` (or a parent process) set one."""
    value = os.environ.get(BUDGET_VARIABLE)
    return int(value) if value and value.isdigit() else None
