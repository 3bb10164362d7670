"""Scrubbing latency in a real browser: serve the viewer on a run, drive headless Chromium with
Playwright, step the epoch slider N times and measure, in the page, the time from the key
press to the last Bokeh document change it caused. Prints median and p90.

    .venv/bin/python bench/browser_latency.py --runs DIR [--steps 20]   (the app opens the last run)
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "viz" / "app.py"
HOOK = """() => { window.__changes = [];
  const mark = () => window.__changes.push(performance.now());
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) if (m.properties.data) { m.change.connect(mark); m.properties.data.change.connect(mark); }
  return window.__changes.length; }"""


def serve(root: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(APP), "--address", "127.0.0.1",
                             "--port", str(port), f"--allow-websocket-origin=127.0.0.1:{port}"],
                            env={**os.environ, "TDW_RUNS": root}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/app"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url  # listening; the page itself is rendered by the browser's request
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("viewer did not start")


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--quiet-ms", type=float, default=400, help="no change for this long = settled")
    args = ap.parse_args()
    proc, url = serve(os.path.abspath(args.runs))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            t = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("canvas", timeout=60_000)
            load = time.perf_counter() - t
            time.sleep(2)
            page.evaluate(HOOK)
            handle = page.locator(".noUi-handle").first
            handle.focus()
            latencies = []
            for _ in range(args.steps):
                start = page.evaluate("performance.now()")
                handle.press("ArrowLeft")
                deadline = time.time() + 5
                while time.time() < deadline:
                    time.sleep(0.05)
                    changes = [c for c in page.evaluate("window.__changes") if c > start]
                    now = page.evaluate("performance.now()")
                    if changes and now - max(changes) > args.quiet_ms:
                        latencies.append(max(changes) - start)
                        break
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    lat = sorted(latencies)
    print(f"page load to first canvas: {load:.2f} s")
    print(f"{len(lat)} slider steps: median {statistics.median(lat):.0f} ms, "
          f"p90 {lat[int(0.9 * (len(lat) - 1))]:.0f} ms (input event -> last plot update in the page)")


if __name__ == "__main__":
    main()
