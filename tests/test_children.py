"""Nothing left behind (``cli/guard.py``): whatever a ``tdw`` command starts dies with it, however
it dies: killed (SIGKILL, SIGTERM), interrupted (Ctrl-C) or ending normally; its children in
other sessions, re-parented grandchildren and forked copies included; what one of its processes
puts in a session of its own (the Train page's run, a browser) and processes that are not the
command's are left alone."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import guard
from cli.server import free_port, healthy, port_free
from tests.children import cmdline, ctrl_c_reaches, processes, wait_gone
from tests.wait import wait_for

REPO = Path(__file__).resolve().parent.parent
SLEEP = ["sleep", "300"]

# A process of the command that detaches two of its own (the viewer's Train-page run, a guarded
# tdw; a browser), prints their pids and waits.
DETACHED = "from cli import guard; import time; guard.install(); time.sleep(300)"
VIEWER = (f"import subprocess, sys, time; run = subprocess.Popen([sys.executable, '-c', {DETACHED!r}], "
          f"start_new_session=True); browser = subprocess.Popen({SLEEP!r}, start_new_session=True); "
          f"print(run.pid, browser.pid, flush=True); time.sleep(300)")
ORPHAN = f"import subprocess; print(subprocess.Popen({SLEEP!r}, stdout=subprocess.DEVNULL).pid)"

# A command that starts one process of every kind, then prints their pids and waits.
COMMAND = f"""
import json, os, subprocess, sys, time
from cli import guard
watchdog = guard.install()
plain = subprocess.Popen({SLEEP!r})
own_session = subprocess.Popen({SLEEP!r}, start_new_session=True)
orphan = int(subprocess.check_output([sys.executable, "-c", {ORPHAN!r}]))  # its parent has exited
forked = os.fork()
if forked == 0:
    time.sleep(300)
    os._exit(0)
viewer = subprocess.Popen([sys.executable, "-c", {VIEWER!r}], stdout=subprocess.PIPE, text=True)
detached = [int(pid) for pid in viewer.stdout.readline().split()]
time.sleep(3 * guard.INTERVAL)  # a poll has seen the forked copy (the others carry the token)
late = subprocess.Popen({SLEEP!r}, start_new_session=True)  # no poll has seen it
print(json.dumps(dict(watchdog=watchdog, detached=detached, ours=[plain.pid, own_session.pid, orphan,
                      forked, viewer.pid, late.pid])), flush=True)
time.sleep(300)
"""


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True, **kwargs)


def _guard_of(pid: int) -> int | None:
    procs = guard.table(guard.pids())
    return next((p for p, proc in procs.items() if proc.ppid == pid and proc.comm == guard.NAME), None)


def _started(pids: list[int]) -> dict[int, int]:
    return {pid: guard.stat(pid).start for pid in pids}


def _kill(*procs: dict[int, int]) -> None:
    """SIGKILL what a failed test leaves (pid -> start time)."""
    for pid, start in {k: v for p in procs for k, v in p.items()}.items():
        if guard.alive(pid, start):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_command_leaves_none_of_its_processes_and_only_those(sig):
    bystander = subprocess.Popen(SLEEP)  # not the command's: must survive
    command = _python(COMMAND)
    ours, detached = {}, {}
    try:
        info = json.loads(command.stdout.readline())
        ours = _started([*info["ours"], info["watchdog"], command.pid])
        run, browser = info["detached"]
        detached = _started([run, browser, wait_for(lambda: _guard_of(run), 30, what="the detached run's guard")])
        command.send_signal(sig)
        assert command.wait(30) == -sig
        wait_gone(ours)  # no process of the killed command is left
        assert all(guard.alive(pid, s) for pid, s in detached.items()), "a detached process was ended"
        assert bystander.poll() is None
        for pid in (run, browser):
            os.kill(pid, signal.SIGKILL)  # the run's own guard then exits
        wait_gone(detached)
    finally:
        for proc in (command, bystander):
            proc.kill()
            proc.wait()
        _kill(ours, detached)


def test_ctrl_c_and_the_exit_code_reach_the_command_and_its_children_still_end():
    """Ctrl-C (SIGINT to the foreground process group) is the command's to handle: the watchdog
    ignores it, and ends the child the command left running (in another session, so Ctrl-C did
    not reach it) once the command exits with its own code. Reading the command's output
    returns when the command exits, not when its watchdog does."""
    command = _python(f"""
import subprocess, sys, time
from cli import guard
guard.install()
child = subprocess.Popen({SLEEP}, start_new_session=True)
try:
    print(child.pid, flush=True)
    time.sleep(300)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
""", start_new_session=True, preexec_fn=ctrl_c_reaches)
    ours = {}
    try:
        child = int(command.stdout.readline())
        watchdog = wait_for(lambda: _guard_of(command.pid), 30, what="the guard")
        ours = _started([child, watchdog])
        os.killpg(command.pid, signal.SIGINT)
        out, _ = command.communicate(timeout=30)
        assert command.returncode == 3 and out.strip() == "interrupted"
        wait_gone(ours)
    finally:
        command.kill()
        command.wait()
        _kill(ours)


def test_descent_is_by_parent_and_what_a_child_puts_in_its_own_session_is_detached():
    P = guard.Proc
    procs = {1: P(0, 1, "S", 0, b"init"), 10: P(1, 5, "S", 1, b"tdw"), 11: P(10, 5, "S", 2, b"tdw-guard"),
             12: P(10, 12, "S", 3, b"python"),  # the command's child in its own session: ours
             13: P(12, 5, "S", 4, b"panel"), 14: P(13, 14, "S", 5, b"tdw"),  # a child's, in its own session
             15: P(14, 14, "S", 6, b"tdw-guard"), 16: P(15, 14, "S", 7, b"uvicorn"),
             17: P(13, 5, "S", 8, b"tdw"), 18: P(17, 5, "S", 9, b"tdw-guard"),  # same session: ours
             20: P(1, 20, "S", 10, b"python"), 21: P(20, 20, "S", 11, b"sleep"),  # an orphan of the command's
             30: P(1, 30, "S", 12, b"bash"), 31: P(30, 30, "S", 13, b"sleep")}  # not the command's
    ours, detached = guard.descendants(procs, {10}, {10, 11})
    assert ours == {12, 13, 17, 18} and detached == {14, 15, 16}
    assert guard.descendants(procs, {10, 20}, {10})[0] == {11, 12, 13, 17, 18, 20, 21}  # 20 recorded earlier


def test_a_poll_reads_the_command_s_processes_and_new_ones_only(monkeypatch):
    """After the first poll, a poll reads ``/proc/<pid>/stat`` of the recorded processes, the
    command and the pids new since the last poll: a handful, not the whole machine."""
    child = subprocess.Popen(SLEEP)
    try:
        watch = guard.Watch(os.getpid(), "token", -1)  # this process stands for the command
        recorded = watch.poll()
        assert child.pid in recorded and len(watch.seen) > len(recorded) + 1
        before, read, stat = watch.seen, [], guard.stat
        monkeypatch.setattr(guard, "stat", lambda pid: read.append(pid) or stat(pid))
        assert child.pid in watch.poll()
        assert set(read) <= {os.getpid(), *recorded, *(watch.seen - before)}
    finally:
        child.kill()
        child.wait()


def _env(tmp_path, name: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / name / "prefect")}
    env.pop("PREFECT_API_URL", None)  # the command starts its own temporary server
    return env


def _uvicorn_port(pid: int) -> int | None:
    """The port of ``pid``'s temporary Prefect server, once it answers."""
    for p in processes(pid):
        words = cmdline(p).split()
        if "uvicorn" in words and "--port" in words:
            port = int(words[words.index("--port") + 1])
            return port if healthy(f"http://127.0.0.1:{port}/api") else None
    return None


@pytest.mark.slow
def test_tdw_train_killed_while_its_prefect_server_is_up_leaves_no_server(tmp_path):
    """``tdw train`` SIGKILLed and another SIGTERMed (at once, to save time) once their temporary
    Prefect servers answer: every process of each, uvicorn included, is gone and its port free."""
    trains = {sig: subprocess.Popen([sys.executable, "-m", "cli", "train", "--preset", "smoke", "--epochs", "100000",
                                     "--compile", "off", "--runs", str(tmp_path / sig.name / "runs")],
                                    cwd=REPO, env=_env(tmp_path, sig.name), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
              for sig in (signal.SIGKILL, signal.SIGTERM)}
    ours = {}
    try:
        ports = {sig: wait_for(lambda: _uvicorn_port(proc.pid), 180, what=f"the {sig.name} run's server")
                 for sig, proc in trains.items()}
        ours = {sig: processes(proc.pid) for sig, proc in trains.items()}
        for sig, proc in trains.items():
            assert len(ours[sig]) >= 3, ours  # tdw, its guard, uvicorn
            proc.send_signal(sig)
        for sig, proc in trains.items():
            proc.wait(60)
            wait_gone(ours[sig])  # no process of the killed tdw train is left
            assert port_free("127.0.0.1", ports[sig])
    finally:
        for proc in trains.values():
            proc.kill()
            proc.wait()
        _kill(*ours.values())


@pytest.mark.slow
def test_tdw_serve_killed_leaves_no_viewer(tmp_path):
    """``tdw serve`` SIGKILLed once its viewer answers: the panel child is gone, its port free."""
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--runs", str(tmp_path / "runs"),
                              "--port", str(port)], cwd=REPO, env=_env(tmp_path, "serve"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours = {}
    try:
        wait_for(lambda: not port_free("127.0.0.1", port), 120, what="the viewer")
        ours = processes(serve.pid)
        assert any("-m panel serve" in cmdline(p) for p in ours), [cmdline(p) for p in ours]
        serve.kill()
        serve.wait(30)
        wait_gone(ours)  # no process of the killed tdw serve is left
        assert port_free("127.0.0.1", port)
    finally:
        serve.kill()
        serve.wait()
        _kill(ours)
