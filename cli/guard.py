"""Nothing left behind: every process a ``tdw`` command starts dies with it, however it dies.

:func:`install`, called first thing by the command, forks a *watchdog*: a copy of the still
light process (before Prefect, torch or TransformerLens are imported), named ``tdw-guard``,
that holds no open file and ignores Ctrl-C and the other terminal signals. Four times a second
it records the command's processes from ``/proc`` as (pid, start time), the start time telling
a process from a later one that reuses its pid:

- its descendants, by parent pid (sessions and process groups do not matter), and the
  descendants of those recorded, which stay recorded after their own parent exits;
- new processes whose environment carries the command's token (``$TDW_GUARD``, which every
  program it runs inherits), whatever their parent: a double fork, or a child re-parented
  before any poll saw it;
- less what a descendant detached on purpose: a process in a session of its own that one of
  the command's processes started (not the command itself), with its tree, such as the Train
  page's ``tdw run``, meant to outlive the viewer (its own watchdog looks after it), or the
  browser that ``panel serve --show`` opens. The command's own children are its, whatever
  their session.

When the command ends (normally, on Ctrl-C, SIGTERM, SIGKILL, ...) the watchdog learns it at
once (``PR_SET_PDEATHSIG`` on itself; the parent pid is also checked at every poll), polls one
last time, sends SIGTERM to every recorded process still running, SIGKILL to those left after
``GRACE`` seconds, and exits.

Nothing else is touched, and a poll is cheap: a process that is not the command's can never
become one (an orphan is re-parented upwards), so a poll lists ``/proc`` and reads the
``stat`` (and, once, the environment) of the pids it has not seen yet and of the recorded ones:
~0.5 ms of CPU, 0.2% of a core, with 124 processes on the machine. (A pid that dies and is
reused between two polls would be missed.)

Children the command starts itself may also get ``PR_SET_PDEATHSIG`` (``preexec_fn=``
:data:`die_with_parent`): the kernel then ends them even if the watchdog was killed too. It is
sent when the *thread* that started the child exits, so start such children from the main
thread. On other systems :func:`install` does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from typing import NamedTuple

NAME = b"tdw-guard"  # the watchdog's process name (``comm``)
ENV = "TDW_GUARD"  # the command's token: "<pid>-<start time>"
INTERVAL = 0.25  # seconds between polls
GRACE = 3.0  # seconds between SIGTERM and SIGKILL
_WAKE = signal.SIGUSR1  # the parent-death signal; blocked, and waited for between polls
_PR_SET_PDEATHSIG, _PR_SET_NAME = 1, 15
_installed: dict[int, int] = {}  # command pid -> its watchdog's pid
LINUX = sys.platform.startswith("linux")
_LIBC = ctypes.CDLL(None, use_errno=True) if LINUX else None  # loaded once: prctl runs in preexec_fn


class Proc(NamedTuple):
    """One line of ``/proc/<pid>/stat``: parent, session, state letter, start time (clock
    ticks after boot) and name."""
    ppid: int
    sid: int
    state: str
    start: int
    comm: bytes


def stat(pid: int) -> Proc | None:
    """The process ``pid`` (None if there is none, or only its zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        close = data.rindex(b")")
        fields = data[close + 2:].split()  # from field 3, the state
        proc = Proc(int(fields[1]), int(fields[3]), fields[0].decode(), int(fields[19]),
                    data[data.index(b"(") + 1:close])
    except (OSError, ValueError, IndexError):  # gone (or going: an empty read)
        return None
    return None if proc.state in "ZX" else proc


def alive(pid: int, start: int) -> bool:
    """Whether the process that started at ``start`` still runs as ``pid``."""
    proc = stat(pid)
    return proc is not None and proc.start == start


def pids() -> set[int]:
    return {int(n) for n in os.listdir("/proc") if n.isdigit()}


def table(among: set[int]) -> dict[int, Proc]:
    return {pid: p for pid in among if (p := stat(pid))}


def descendants(procs: dict[int, Proc], starts: set[int], exclude: set[int]) -> tuple[set[int], set[int]]:
    """``(ours, detached)``: the processes of ``procs`` that are ``starts`` or descend from them,
    less ``exclude``; those in a session of their own whose parent is one of them head
    ``detached`` trees."""
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    reach, todo = set(), list(starts)
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in reach:
            reach.add(pid)
            todo.extend(children.get(pid, ()))
    reach -= exclude
    todo = [pid for pid in reach if procs[pid].sid == pid and procs[pid].ppid in reach]
    detached = set()
    while todo:
        pid = todo.pop()
        detached.add(pid)
        todo.extend(children.get(pid, ()))
    return reach - detached, detached


class Watch:
    """What a command has started: :meth:`poll` returns its processes (pid -> start time)."""

    def __init__(self, root: int, token: str, me: int):
        self.root, self.token = root, token
        self.recorded: dict[int, int] = {}
        self.others: set[int] = {me}  # pids seen that are not the command's
        self.seen: set[int] = set()  # the pids the last poll listed

    def poll(self) -> dict[int, int]:
        """The command's descendants (recorded ones included), and the processes new since the
        last poll that carry its token, with theirs; less the detached trees."""
        listed = pids()
        new, read = listed - self.seen, listed - self.others
        procs = table(read)
        kept = {pid for pid, s in self.recorded.items() if pid in procs and procs[pid].start == s}
        marked = {pid for pid in new & procs.keys() if procs[pid].comm != NAME and _carries(pid, self.token)}
        ours, _ = descendants(procs, {self.root, *kept, *marked}, {self.root})
        self.recorded = {pid: procs[pid].start for pid in ours}
        self.others = (self.others & listed) | (read - ours - {self.root})  # zombies too
        self.seen = listed
        return self.recorded


def _carries(pid: int, token: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{ENV}={token}".encode() in f.read().split(b"\0")
    except OSError:  # gone, or another user's
        return False


def end(targets: dict[int, int], grace: float = GRACE) -> None:
    """SIGTERM every process of ``targets`` (pid -> start time) still running, then SIGKILL those
    left after ``grace`` seconds; returns once they are gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        targets = {pid: s for pid, s in targets.items() if alive(pid, s)}
        for pid in targets:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while any(alive(pid, s) for pid, s in targets.items()) and time.monotonic() < deadline:
            time.sleep(0.05)


def _prctl(option: int, arg) -> None:
    _LIBC.prctl(option, arg, 0, 0, 0)


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# ``preexec_fn=die_with_parent``: the child gets SIGTERM when the thread that started it exits
# (None where not Linux)
die_with_parent = _die_with_parent if LINUX else None


def install() -> int | None:
    """Fork the watchdog of this process (once); returns its pid (None where not Linux)."""
    root = os.getpid()
    if not LINUX:
        return None
    if root not in _installed:
        token = f"{root}-{stat(root).start}"
        os.environ[ENV] = token
        pid = os.fork()
        if pid == 0:
            try:
                _watch(root, token)
            finally:
                os._exit(0)
        _installed[root] = pid
    return _installed[root]


def _watch(root: int, token: str) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {_WAKE})
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)  # a terminal's signals are for the command
    _prctl(_PR_SET_NAME, NAME)
    _prctl(_PR_SET_PDEATHSIG, _WAKE)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)  # a caller reading the command's output never waits for the watchdog
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    watch = Watch(root, token, os.getpid())
    while True:
        parent = os.getppid()
        with contextlib.suppress(Exception):  # a poll that fails is skipped: the last one stands
            watch.poll()
        if parent != root:
            break
        signal.sigtimedwait([_WAKE], INTERVAL)
    end(watch.recorded)
