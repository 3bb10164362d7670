"""One trainer per run: an exclusive advisory lock (``flock``) on ``<run>/train.lock``.

A second ``tdw train``/``run``/``sweep`` on a run that is training is refused with a clear
message naming the holder's process id, instead of two writers racing on the same checkpoints
and resume state. The kernel drops the lock when the holder exits, however it exits (SIGKILL
included), so a crash never leaves a run locked. Analysis needs no lock: each task writes its
own epoch's chunks, and rewriting an epoch writes the same values.

Object-store roots have no ``flock``: there, one trainer per run is the deployment's job
(one work-pool run per run id), and this lock is a no-op.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator

from store import files, layout


class RunBusy(RuntimeError):
    """The run is being trained by another process."""


def lock_path(root: str, run_id: str) -> str:
    return os.path.join(layout.run_dir(root, run_id), "train.lock")


@contextlib.contextmanager
def training_lock(root: str, run_id: str) -> Iterator[None]:
    """Hold the run's training lock, or raise :class:`RunBusy` at once naming the holder."""
    if files.is_url(root):
        yield
        return
    fd = os.open(lock_path(root, run_id), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_id, fd) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _busy(run_id: str, fd: int) -> RunBusy:
    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    return RunBusy(f"run {run_id} is being trained by another process (pid {holder}); "
                   "wait for it to finish or stop it, then run the same command to resume")


def refuse_if_training(root: str, run_id: str) -> None:
    """Raise :class:`RunBusy` now if another process trains the run: a friendly refusal before
    a flow starts (the lock taken by ``train_run`` is what guarantees)."""
    path = lock_path(root, run_id)
    if files.is_url(root) or not os.path.exists(path):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(run_id, fd) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def layout_lock(root: str) -> Iterator[None]:
    """Serialise changes to the layout of runs under a runs root (creating a run, adding
    arrays to a store), so two processes starting the same new run do not both create it or
    the same array (the second waits, then finds it made). Held for milliseconds."""
    if files.is_url(root):
        yield
        return
    os.makedirs(root, exist_ok=True)
    fd = os.open(os.path.join(root, ".tdw-create.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
