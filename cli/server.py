"""``tdw server``: a Prefect server and its UI on 127.0.0.1, with a project-local Prefect home.

Flows report to a server when ``PREFECT_API_URL`` points at it and run embedded otherwise. The
server runs in its own process group, so stopping it (Ctrl-C, or :func:`stop` with the process
object) ends the server and the web process it spawns, by process id, and nothing else. A
``tdw server`` killed outright (SIGKILL included) takes them with it too: its guard
(``cli/guard.py``) ends them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".prefect"  # project-local: never the user's ~/.prefect database


class ServerError(RuntimeError):
    """The server could not start (exited early, not healthy in time)."""


class PortInUse(ServerError):
    """Bad input: the address is taken."""


def api_url(host: str = "127.0.0.1", port: int = 4200) -> str:
    return f"http://{host}:{port}/api"


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for tests and a second server)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(host: str = "127.0.0.1", port: int = 4200, home: str | os.PathLike = HOME,
          log: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start ``prefect server start`` in a new process group; returns at once (see
    :func:`wait_healthy`). Output goes to ``log`` (a file) or is inherited."""
    if not port_free(host, port):
        raise PortInUse(f"port {port} on {host} is in use (a server already running? choose --port)")
    os.makedirs(home, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           # the UI in the browser calls the API at these unless PREFECT_UI_API_URL says otherwise
           "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)  # the server is not a client of another server
    out = open(log, "ab") if log else None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT if out else None, stdin=subprocess.DEVNULL,
            start_new_session=True)
    finally:
        if out:
            out.close()


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 90) -> float:
    """Wait until the API answers; returns the seconds it took. Raises if the server exits."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise ServerError(f"prefect server exited with code {proc.returncode} before it was healthy")
        if healthy(url):
            return time.monotonic() - t0
        time.sleep(0.25)
    raise ServerError(f"prefect server not healthy after {timeout:.0f} s at {url}")


def stop(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM the server's process group (it was started as its leader), SIGKILL if it lingers."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
    _reap_group(proc.pid)
    return proc.returncode if proc.returncode is not None else -9


def _reap_group(pgid: int) -> None:
    """Kill what is left of the group (the web process outlives its parent on some signals)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(host: str = "127.0.0.1", port: int = 4200, home: str | os.PathLike = HOME) -> int:
    """Run a server in the foreground until Ctrl-C or SIGTERM; prints the UI address."""
    proc = start(host, port, home)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        took = wait_healthy(proc, api_url(host, port))
        print(f"\nPrefect UI on http://{host}:{port}  (healthy after {took:.1f} s; server pid {proc.pid}; "
              f"Prefect home {home})\n"
              f"Point flows and workers at it:  export PREFECT_API_URL={api_url(host, port)}\n"
              "Ctrl-C stops it.", flush=True)
        proc.wait()
        return proc.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)
        print("Prefect server stopped.", flush=True)


def add_parser(commands) -> None:
    """``tdw server`` on the ``tdw`` command's subparsers."""
    sub = commands.add_parser(
        "server", help="start a Prefect server and UI on 127.0.0.1:4200 (Ctrl-C stops it)",
        description="Start `prefect server start` with a project-local Prefect home (.prefect/ in "
                    "this checkout) and print the UI address. Flows and workers report to it "
                    "when PREFECT_API_URL points at it; without it they run embedded.")
    sub.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=4200, help="port (default 4200)")
    sub.add_argument("--home", default=str(HOME), help="Prefect home: database and settings "
                     "(default: .prefect/ in this checkout)")


def command(args) -> int:
    try:
        return serve(args.host, args.port, args.home)
    except PortInUse:
        raise
    except ServerError as exc:
        print(f"tdw: error: {exc}", file=sys.stderr)
        return 1
