"""Deployment latency: from `prefect deployment run` to COMPLETED, smoke preset, process worker.

Starts a Prefect server on 127.0.0.1 (temporary home), deploys the pipeline deployment of
deploy/prefect.yaml to a temporary process pool, then times, each into a fresh runs root:

- baseline: `tdw run --preset smoke` in a new process, reporting to the same server;
- run-once: `prefect deployment run` then `prefect worker start --run-once` (as the test does);
- worker up: a worker already running (default polling, every 10 s) picks the run up.

Prints every time, the medians and the ratios to the baseline. ``--screenshot PATH`` also saves
the Prefect UI page of the last run's training flow run with its progress artifact (headless
Chromium). Everything started here is stopped by process id.

    .venv/bin/python bench/deployment_latency.py [--rounds 3] [--screenshot docs/prefect-ui.png]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli import server
from cli.deploy import REPO

sys.path.insert(0, str(REPO))
from tests import chromium  # noqa: E402  (how Chromium is launched, shared with the browser tests)

POOL = "tdw-bench"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def sh(args: list[str], env: dict) -> str:
    out = subprocess.run(args, env=env, capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)
    if out.returncode:
        sys.exit(f"{' '.join(args[:5])} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout


def worker(env: dict, log: Path, once: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL] + (["--run-once"] if once else [])
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_final(client, flow_run_id: str, timeout: float = 300):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        time.sleep(0.25)
    sys.exit(f"flow run {flow_run_id} not final after {timeout:.0f} s")


def deployment_run(env: dict, runs: Path) -> str:
    out = sh([sys.executable, "-m", "prefect", "deployment", "run", "pipeline/pipeline", "-p", "preset=smoke",
              "--job-variable", "env=" + json.dumps({"TDW_RUNS": str(runs), "TDW_DEVICE": "cpu"})], env)
    return UUID.search(out).group(0)


def screenshot(client, ui: str, pipeline_run, path: str) -> None:
    """Two pages in headless Chromium: the training flow run with its progress artifact
    (``path``), and the pipeline run's summary artifact (``path`` with ``-summary``)."""
    from playwright.sync_api import sync_playwright
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    train = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        name=FlowRunFilterName(any_=[f"train-{pipeline_run.name}"])))[0]
    summary = next(a for a in client.read_artifacts() if a.key == "run-summary" and a.flow_run_id == pipeline_run.id)
    with sync_playwright() as pw:
        browser = chromium.launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{ui}/runs/flow-run/{train.id}", wait_until="networkidle")  # client-rendered
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text(re.compile("^progress$", re.I)).first.wait_for(timeout=30000)
        page.locator(".p-button-group button").nth(1).click()  # list view: the card spans the page
        page.wait_for_timeout(1500)
        page.screenshot(path=path)
        page.goto(f"{ui}/artifacts/artifact/{summary.id}", wait_until="networkidle")
        page.get_by_text("grokking epoch", exact=False).first.wait_for(timeout=30000)
        page.wait_for_timeout(1000)
        page.screenshot(path=path.replace(".png", "-summary.png"))
        browser.close()
    print(f"screenshots of {ui}/runs/flow-run/{train.id} and its summary saved to {path} and *-summary.png")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--screenshot", help="PNG path for the Prefect UI page of the last run")
    args = ap.parse_args()
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    tmp = Path(tempfile.mkdtemp(prefix="tdw-deploy-bench-"))
    port = server.free_port()
    url = server.api_url(port=port)
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(tmp / "client"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OMP_NUM_THREADS": "1"}
    srv = server.start(port=port, home=tmp / "server", log=tmp / "server.log")
    long_worker = None
    times: dict[str, list[float]] = {"baseline": [], "run-once": [], "worker up": []}
    try:
        print(f"server healthy in {server.wait_healthy(srv, url):.1f} s on {url}")
        t = time.monotonic()
        sh([sys.executable, "-m", "cli.main", "deploy", "pipeline", "--pool", POOL], env)
        print(f"tdw deploy pipeline: {time.monotonic() - t:.1f} s")
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            for i in range(args.rounds):
                t = time.monotonic()
                sh([sys.executable, "-m", "cli.main", "run", "--preset", "smoke", "--device", "cpu",
                    "--runs", str(tmp / f"base-{i}")], env)
                times["baseline"].append(time.monotonic() - t)

                t = time.monotonic()
                flow_run_id = deployment_run(env, tmp / f"once-{i}")
                w = worker(env, tmp / "worker.log", once=True)
                run = wait_final(client, flow_run_id)
                times["run-once"].append(time.monotonic() - t)
                w.wait(timeout=60)
                assert run.state.is_completed(), run.state
                print(f"round {i}: baseline {times['baseline'][-1]:.1f} s, run-once {times['run-once'][-1]:.1f} s",
                      flush=True)

            long_worker = worker(env, tmp / "worker.log", once=False)
            time.sleep(5)  # the worker has started and polled once
            for i in range(args.rounds):
                t = time.monotonic()
                run = wait_final(client, deployment_run(env, tmp / f"up-{i}"))
                times["worker up"].append(time.monotonic() - t)
                assert run.state.is_completed(), run.state
                print(f"round {i}: worker up {times['worker up'][-1]:.1f} s", flush=True)
            report(times, args.rounds)
            if args.screenshot:
                screenshot(client, f"http://127.0.0.1:{port}", run, args.screenshot)
    finally:
        if long_worker is not None:
            server.stop(long_worker)
        server.stop(srv)


def report(times: dict[str, list[float]], rounds: int) -> None:
    base = statistics.median(times["baseline"])
    print(f"\nsmoke preset, {rounds} rounds, medians:")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:10s} {med:6.1f} s  (x{med / base:.2f} of baseline)   "
              + " ".join(f"{v:.1f}" for v in values), flush=True)


if __name__ == "__main__":
    main()
