"""One owner per job: an exclusive lock a shard job (or a trainer) holds on its outputs.

A Snakemake killed on its own leaves its jobs running; the rerun then starts a second copy of
each, which writes the same files and whose sweep of temporary files deletes the first copy's
files in flight. So every job that owns outputs takes :func:`hold` on a lock file beside them
before it touches anything, and keeps it until it ends.

The lock is a POSIX record lock (``fcntl.lockf``, F_SETLK on the whole file), not ``flock``:

* the kernel releases it when the process dies, SIGKILL included, so a killed job never
  leaves a stale lock on a local disk;
* NFS carries POSIX locks to the server (NLM for NFSv3, the protocol itself for NFSv4; a
  client that dies loses its locks when its lease expires, 90 s by default), while ``flock``
  on NFS is only emulated through them since Linux 2.6.12 and is node-local before;
* Lustre honours both only when mounted with ``-o flock`` (cluster-coherent); with
  ``localflock`` they are node-local, and with neither the call fails (ENOSYS), which
  :func:`hold` reports in one line rather than running unlocked.

A POSIX lock belongs to the process, and closing *any* descriptor of the file drops it, so the
file is opened once here and nothing else opens it. The holder writes its pid and host into
the file, so a second process can say who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class LockHeld(RuntimeError):
    """Another live process holds the lock; the message names its pid and host."""


def lock_path_for(output: str | os.PathLike) -> Path:
    """The lock file of an output (a status table, a model): ``<output>.lock`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.name}.lock")


def _holder(handle) -> str:
    handle.seek(0)
    text = handle.read().strip()
    return text or "an unknown process"


@contextmanager
def hold(path: str | os.PathLike, wait: bool = True, poll_s: float = 2.0) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    With ``wait`` a held lock is waited for (logging its holder once: the job then goes on
    where the holder stopped, reusing what it finished); without, :class:`LockHeld` is raised
    at once, naming the holder. The lock file stays on disk (removing it would let a third
    process lock a new file while the second still holds the old one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - must stay open while held
    try:
        _acquire(handle, path, wait, poll_s)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the lock (as the kernel does if the process dies)


def _acquire(handle, path: Path, wait: bool, poll_s: float) -> None:
    logged = False
    while True:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP):
                raise LockHeld(
                    f"{path}: this filesystem refuses POSIX locks ({os.strerror(err.errno)});"
                    " on Lustre mount with -o flock"
                ) from None
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
        holder = _holder(handle)
        if not wait:
            raise LockHeld(f"{path}: held by {holder}; is another run of this job still going?")
        if not logged:
            log.warning("%s: held by %s; waiting for it to finish", path, holder)
            logged = True
        time.sleep(poll_s)
