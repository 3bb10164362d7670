"""Real child processes for the fault tests, forked from a server that has already imported
torch, TransformerLens and the workbench. A fresh interpreter spends ~10 s on those imports on
the 2-core CPU; forked children start training in well under a second, so a SIGKILL at a
random moment lands on training or analysis (not on the imports) and the tests stay short.

``Child`` has the part of ``subprocess.Popen`` the tests use (``pid``, ``poll``, ``wait``,
``returncode``) and ``error``: the exception a child died of, as ``"Name: message"``. A child
stands for a ``tdw`` command: it installs the command's guard (``cli/guard.py``), and
``kill`` records its processes first (``killed``) for :func:`wait_gone`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import time

from cli import guard
from tests.wait import wait_for

CONTEXT = multiprocessing.get_context("forkserver")  # for process pools too (``mp_context=``)
CONTEXT.set_forkserver_preload(["torch", "tasks.runs", "tasks.config", "tests.children"])


def _run(target, args: tuple, env: dict[str, str], error_path: str, started) -> None:
    import torch

    os.environ.clear()  # the parent's environment now, not the forkserver's from its start
    os.environ.update(env)
    torch.set_num_threads(1)  # as the reference runs: the same reduction order, the same bits
    guard.install()
    started.set()
    try:
        target(*args)
    except BaseException as exc:  # noqa: BLE001 (reported to the parent, then a non-zero exit)
        with open(error_path, "w") as f:
            f.write(f"{type(exc).__name__}: {exc}")
        raise


class Child:
    """``target(*args)`` in a forked child, with the caller's environment plus ``env``. A
    daemon: a test that fails while it runs does not leave pytest waiting for it at exit."""

    def __init__(self, target, *args, env: dict[str, str] | None = None):
        fd, self._error_path = tempfile.mkstemp(suffix=".child-error")
        os.close(fd)
        self.started = CONTEXT.Event()
        self._proc = CONTEXT.Process(target=_run, daemon=True,
                                     args=(target, args, {**os.environ, **(env or {})}, self._error_path, self.started))
        self._proc.start()
        self.pid = self._proc.pid
        self.killed: dict[int, int] = {}  # what ``kill`` found running: pid -> start time

    def poll(self) -> int | None:
        return self._proc.exitcode

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise TimeoutError(f"child {self.pid} still running after {timeout} s")
        return self._proc.exitcode

    def kill(self) -> None:
        """SIGKILL, unless it has already exited (the forkserver reaps its children at once,
        so a bare ``os.kill`` on an exited child's pid could hit nothing, or another process).
        Records the child and its processes (``killed``) first."""
        self.killed = processes(self.pid)
        self._proc.kill()

    def wait_started(self, timeout: float = 120) -> None:
        """Until the child runs its target (imports done, environment set)."""
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.05):
            if self.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"child {self.pid} never started: {self.error}")

    @property
    def error(self) -> str:
        with open(self._error_path) as f:
            return f.read()

    def __del__(self) -> None:
        if os.path.exists(self._error_path):
            os.remove(self._error_path)


def processes(pid: int) -> dict[int, int]:
    """``pid`` and every process descending from it now, as pid -> start time (``/proc``)."""
    procs = guard.table(guard.pids())
    ours, detached = guard.descendants(procs, {pid}, set())
    return {p: procs[p].start for p in ours | detached}


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def wait_gone(procs: dict[int, int], timeout: float = 30) -> None:
    """Wait until none of ``procs`` (pid -> start time) runs; fail naming those left after
    ``timeout`` seconds."""
    def running() -> list[int]:
        return [pid for pid, start in procs.items() if guard.alive(pid, start)]

    wait_for(lambda: not running(), timeout, what=lambda: f"the end of {[cmdline(p) for p in running()]}")


# --- targets -------------------------------------------------------------------------------

def train(root: str, num_epochs: int, checkpoint_epochs: tuple[int, ...]) -> None:
    """Prepare (or reconcile) the smoke run of that extent and train it to the end."""
    from tasks.config import preset
    from tasks.runs import prepare_run, train_run

    cfg = prepare_run(root, preset("smoke", num_epochs=num_epochs, checkpoint_epochs=checkpoint_epochs))
    train_run(root, cfg, device="cpu")


def analyse(root: str, run_id: str) -> None:
    """Analyse every pending epoch, one after another."""
    from tasks.runs import analyze_epoch, pending_epochs

    for epoch in pending_epochs(root, run_id):
        analyze_epoch(root, run_id, epoch)


def ctrl_c_reaches() -> None:
    """``preexec_fn``: SIGINT back to its default in the child. A shell that starts a job in the
    background without job control (nohup, `cmd &` in a script) has it ignored, and children
    inherit that, so Ctrl-C sent by a test would not reach them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
