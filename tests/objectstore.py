"""An S3-compatible server on 127.0.0.1 for tests and benchmarks: moto in server mode, in its
own process (started here, stopped here by process id)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request

from cli.server import free_port, stop
from tests.wait import wait_for

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server(log: str | None = None):
    """Yield the endpoint URL (``http://127.0.0.1:<port>``) of a fresh, empty S3 server."""
    port = free_port()
    out = open(log or os.devnull, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_for(answers, 60, interval=0.2, what=f"the moto server on {endpoint} to answer")
        yield endpoint
    finally:
        stop(proc, timeout=10)
        out.close()


def s3_environment(endpoint: str) -> dict[str, str]:
    """What a process needs to use the server: credentials and the project's storage options."""
    return {**CREDENTIALS, "TDW_STORAGE_OPTIONS": json.dumps({"endpoint_url": endpoint})}


def make_bucket(name: str) -> None:
    """Create a bucket on the server the environment points at."""
    from store import files

    fs, _ = files.filesystem(f"s3://{name}")
    fs.mkdir(name)
