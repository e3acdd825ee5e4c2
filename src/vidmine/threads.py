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
"""

from __future__ import annotations

import os
import sys

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
        cpus = cpus[:threads]
        os.sched_setaffinity(0, cpus)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return cpus


def thread_budget() -> int | None:
    """The job's thread budget, when ``limit_threads`` (or a parent process) set one."""
    value = os.environ.get(BUDGET_VARIABLE)
    return int(value) if value and value.isdigit() else None
