"""Nothing left behind (``cli/guard.py``): whatever a ``tdw`` command starts dies with it, however
it dies: killed (SIGKILL, SIGTERM), interrupted (Ctrl-C) or ending normally; its children in
other sessions, re-parented grandchildren and forked copies included; a guarded ``tdw`` in its
own session (the Train page's run) and processes that are not the command's are left alone."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import guard
from cli.server import free_port, port_free
from tests.children import processes, wait_gone

REPO = Path(__file__).resolve().parent.parent
SLEEP = ["sleep", "300"]

# A command that starts one process of every kind, then prints their pids and waits.
COMMAND = f"""
import json, os, subprocess, sys, time
from cli import guard
watchdog = guard.install()
plain = subprocess.Popen({SLEEP})
own_session = subprocess.Popen({SLEEP}, start_new_session=True)
orphan = int(subprocess.check_output([sys.executable, "-c", "import subprocess; "
    "print(subprocess.Popen({SLEEP}, stdout=subprocess.DEVNULL, start_new_session=True).pid)"]))
forked = os.fork()
if forked == 0:
    time.sleep(300)
    os._exit(0)
detached = subprocess.Popen([sys.executable, "-c", "from cli import guard; import time; guard.install(); "
                             "time.sleep(300)"], start_new_session=True)
time.sleep(3 * guard.INTERVAL)  # a poll has seen the forked copy (the others carry the token)
late = subprocess.Popen({SLEEP}, start_new_session=True)  # no poll has seen it
print(json.dumps(dict(watchdog=watchdog, detached=detached.pid, ours=[plain.pid, own_session.pid,
                      orphan, forked, late.pid])), flush=True)
time.sleep(300)
"""


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True, **kwargs)


def _until(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


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
        detached_guard = _until(lambda: _guard_of(info["detached"]), what="the detached command's guard")
        detached = _started([info["detached"], detached_guard])
        command.send_signal(sig)
        assert command.wait(30) == -sig
        assert wait_gone(ours) == [], "a process of the killed command is left"
        assert all(guard.alive(pid, s) for pid, s in detached.items()), "the detached command was ended"
        assert bystander.poll() is None
        os.kill(info["detached"], signal.SIGKILL)  # its own guard then exits
        assert wait_gone(detached) == []
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
""", start_new_session=True)
    ours = {}
    try:
        child = int(command.stdout.readline())
        watchdog = _until(lambda: _guard_of(command.pid), what="the guard")
        ours = _started([child, watchdog])
        os.killpg(command.pid, signal.SIGINT)
        out, _ = command.communicate(timeout=30)
        assert command.returncode == 3 and out.strip() == "interrupted"
        assert wait_gone(ours) == []
    finally:
        command.kill()
        command.wait()
        _kill(ours)


def test_descent_is_by_parent_and_a_guarded_command_in_its_own_session_is_detached():
    P = guard.Proc
    procs = {1: P(0, 1, "S", 0, b"init"), 10: P(1, 5, "S", 1, b"tdw"), 11: P(10, 5, "S", 2, b"tdw-guard"),
             12: P(10, 12, "S", 3, b"python"),  # own session: still ours
             13: P(12, 5, "S", 4, b"panel"), 14: P(13, 14, "S", 5, b"tdw"),  # a guarded tdw in its session
             15: P(14, 14, "S", 6, b"tdw-guard"), 16: P(14, 14, "S", 7, b"uvicorn"),
             17: P(13, 5, "S", 8, b"tdw"), 18: P(17, 5, "S", 9, b"tdw-guard"),  # guarded, same session: ours
             20: P(1, 5, "S", 10, b"python"), 21: P(20, 5, "S", 11, b"sleep"),  # an orphan of the command's
             30: P(1, 30, "S", 12, b"bash"), 31: P(30, 30, "S", 13, b"sleep")}  # not the command's
    ours, detached = guard.descendants(procs, {10}, {10, 11})
    assert ours == {12, 13, 17, 18} and detached == {14, 15, 16}
    assert guard.descendants(procs, {10, 20}, {10})[0] == {11, 12, 13, 17, 18, 20, 21}  # 20 recorded earlier


def _env(tmp_path, name: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / name / "prefect")}
    env.pop("PREFECT_API_URL", None)  # the command starts its own temporary server
    return env


def _uvicorn_port(pid: int) -> int | None:
    """The port of ``pid``'s temporary Prefect server, once it answers."""
    from cli.server import healthy

    for p in processes(pid):
        try:
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in cmdline and b"--port" in cmdline:
            port = int(cmdline[cmdline.index(b"--port") + 1])
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
        ports = {sig: _until(lambda: _uvicorn_port(proc.pid), 180, f"the {sig.name} run's server")
                 for sig, proc in trains.items()}
        ours = {sig: processes(proc.pid) for sig, proc in trains.items()}
        for sig, proc in trains.items():
            assert len(ours[sig]) >= 3, ours  # tdw, its guard, uvicorn
            proc.send_signal(sig)
        for sig, proc in trains.items():
            proc.wait(60)
            assert wait_gone(ours[sig]) == [], f"a process of the {sig.name}ed tdw train is left"
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
        _until(lambda: not port_free("127.0.0.1", port), 120, "the viewer")
        ours = processes(serve.pid)
        assert any(re.search(rb"\bpanel\b", Path(f"/proc/{p}/cmdline").read_bytes()) for p in ours), ours
        serve.kill()
        serve.wait(30)
        assert wait_gone(ours) == [], "a process of the killed tdw serve is left"
        assert port_free("127.0.0.1", port)
    finally:
        serve.kill()
        serve.wait()
        _kill(ours)
