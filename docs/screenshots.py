"""The screenshots in the README and docs/, taken from the current viewer on a run:

    .venv/bin/python docs/screenshots.py --runs DIR --run RUN_ID [--epoch N] [--out docs]
    .venv/bin/python docs/screenshots.py --grid-runs DIR [--out docs]
    .venv/bin/python docs/screenshots.py --runs DIR --layers RUN_ID [--layer L] [--out docs]

Serves the viewer on the runs root (``panel serve viz/app.py``), opens it in headless Chromium
(launched as the browser tests launch it, ``tests/chromium.py``) in a 1,480 × 900 window, and
writes ``viewer.png`` (the Run page's first screen, at ``--epoch``), ``neurons.png`` (the neuron
views at the last epoch, the grid on the largest frequency cluster), ``progress.png`` (the
Progress measures tab), ``train.png`` (the Train page) and ``report-p<p>.png`` (the validation
report of ``tdw report``, rendered in the same browser). With ``--grid-runs`` (a sweep over
tasks and training fractions), ``task-grid.png``: the Compare runs page's grid of the epoch to
generalise per task × training fraction over every run of that root, whose numbers it also
prints as a markdown table. With ``--layers`` (a run of several layers), ``layers.png``: its
Run page on the Layers tab (one curve per layer over training), the layer picker on ``--layer``
(default: the last)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import chromium  # noqa: E402

WINDOW = {"width": 1480, "height": 900}
FIRST_TAB = ["loss", "accuracy", "embedding_spectrum", "neuron_heatmap", "neuron_grid", "neuron_frequencies"]
PROGRESS_TAB = ["progress_losses", "periodicity", "gini", "weight_norm", "specialised_share"]
LAYERS_TAB = ["residual_shares", "logit_attribution", "logit_lens_accuracy", "logit_lens_loss"]
# the named figures drawn in the page, once every document is idle
DRAWN = """(names) => window.Bokeh !== undefined && Bokeh.documents.length > 0
  && Bokeh.documents.every(d => d.is_idle)
  && names.every(n => Bokeh.documents.some(d => [...d.all_models].some(m => m.name === n && Bokeh.index.find_one(m))))"""
# whether the named figure's title holds a text
TITLED = """([name, text]) => Bokeh.documents.some(d => [...d.all_models].some(
  m => m.name === name && m.title && m.title.text.includes(text)))"""
# the page box around the named figures (x, y, width, height)
BOX = """(names) => {
  const boxes = [];
  for (const doc of Bokeh.documents) for (const m of doc.all_models)
    if (names.includes(m.name) && m.renderers !== undefined) {
      const view = Bokeh.index.find_one(m);
      if (view) boxes.push(view.el.getBoundingClientRect());
    }
  const x = Math.min(...boxes.map(b => b.left)), y = Math.min(...boxes.map(b => b.top));
  return {x: x + window.scrollX, y: y + window.scrollY,
          width: Math.max(...boxes.map(b => b.right)) - x, height: Math.max(...boxes.map(b => b.bottom)) - y};
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(runs: str) -> tuple[subprocess.Popen, str]:
    """The viewer on ``runs``, answering at the returned address."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(ROOT / "viz" / "app.py"), "--address", "127.0.0.1",
         "--port", str(port), f"--allow-websocket-origin=127.0.0.1:{port}"],
        env={**os.environ, "TDW_RUNS": runs}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=10)
            return proc, url
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("the viewer did not start")
            time.sleep(0.5)


def settle(page, names: list[str]) -> None:
    page.wait_for_function(f"({DRAWN})({json.dumps(names)})", timeout=120_000)
    page.wait_for_timeout(800)  # the last patches painted


def shoot(browser, url: str, run: str, epoch: int | None, out: Path, p: int, runs: str) -> None:
    page = browser.new_page(viewport=WINDOW)
    query = f"?run={run}" + (f"&epoch={epoch}" if epoch is not None else "")
    page.goto(url + query)
    settle(page, FIRST_TAB)
    page.mouse.move(1, 1)  # no toolbar shown by a hover
    page.screenshot(path=out / "viewer.png")

    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("End")  # the neurons at the last epoch
    page.wait_for_timeout(1000)
    grid = page.get_by_label("Neuron grid")
    clusters = [o for o in grid.locator("option").all_inner_texts() if o.startswith("frequency")]
    if clusters:  # the largest cluster, once the grid shows it
        grid.select_option(label=max(clusters, key=lambda o: int(o.split("(")[1].split()[0])))
        page.wait_for_function(TITLED, arg=["neuron_grid", "Cluster"], timeout=60_000)
    settle(page, FIRST_TAB)
    page.mouse.move(1, 1)
    box = page.evaluate(BOX, ["neuron_heatmap", "neuron_grid", "neuron_frequencies"])
    pad = 8
    page.screenshot(path=out / "neurons.png", full_page=True, clip={
        "x": box["x"] - pad, "y": box["y"], "width": box["width"] + 2 * pad, "height": box["height"] + pad})

    page.get_by_text("Progress measures", exact=True).click()
    settle(page, PROGRESS_TAB)
    page.mouse.move(1, 1)
    page.screenshot(path=out / "progress.png", full_page=True)

    page.get_by_text("Train", exact=True).click()
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=out / "train.png")
    page.close()

    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "cli.main", "report", run, "--runs", runs, "--out", str(html)],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        page = browser.new_page(viewport=WINDOW)
        page.goto(html.as_uri())
        page.wait_for_function("window.Bokeh !== undefined && Bokeh.documents.length > 0", timeout=120_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=out / f"report-p{p}.png", full_page=True)
        page.close()


def shoot_layers(browser, url: str, run: str, layer: int | None, out: Path) -> None:
    page = browser.new_page(viewport=WINDOW)
    page.goto(url + f"?run={run}" + (f"&layer={layer}" if layer is not None else ""))
    settle(page, FIRST_TAB)
    page.get_by_text("Layers", exact=True).click()
    settle(page, LAYERS_TAB)
    page.mouse.move(1, 1)
    page.screenshot(path=out / "layers.png", full_page=True)
    page.close()


def shoot_grid(browser, url: str, out: Path) -> None:
    page = browser.new_page(viewport=WINDOW)
    page.goto(url + "?page=compare")
    page.get_by_text("task × fraction grid", exact=True).click()
    settle(page, ["task_grid"])
    page.mouse.move(1, 1)
    box = page.evaluate(BOX, ["task_grid"])
    pad = 8
    page.screenshot(path=out / "task-grid.png", full_page=True, clip={
        "x": box["x"] - pad, "y": box["y"] - pad, "width": box["width"] + 2 * pad, "height": box["height"] + 2 * pad})
    page.close()


def shots(runs: str, take) -> None:
    """Serve the viewer on ``runs`` and call ``take(browser, url)``."""
    proc, url = serve(runs)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = chromium.launch(pw)
            try:
                take(browser, url)
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", help="the runs root of --run")
    ap.add_argument("--run", help="the run id to show")
    ap.add_argument("--epoch", type=int, help="the epoch shown (default: the last analysed)")
    ap.add_argument("--grid-runs", help="a runs root of a sweep over tasks and fractions: task-grid.png")
    ap.add_argument("--layers", help="a run of several layers under --runs: layers.png")
    ap.add_argument("--layer", type=int, help="the layer picked in layers.png (default: the last)")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go (default: docs/)")
    args = ap.parse_args()
    if bool(args.runs) != bool(args.run or args.layers) or not (args.run or args.grid_runs or args.layers):
        ap.error("give --runs and --run (or --layers), or --grid-runs, or both")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if args.run:
        runs = os.path.abspath(args.runs)
        p = json.loads((Path(runs) / args.run / "config.json").read_text())["p"]
        shots(runs, lambda browser, url: shoot(browser, url, args.run, args.epoch, out, p, runs))
        written += ["viewer.png", "neurons.png", "progress.png", "train.png", f"report-p{p}.png"]
    if args.layers:
        runs = os.path.abspath(args.runs)
        shots(runs, lambda browser, url: shoot_layers(browser, url, args.layers, args.layer, out))
        written.append("layers.png")
    if args.grid_runs:
        from viz import data, grid

        runs = os.path.abspath(args.grid_runs)
        shots(runs, lambda browser, url: shoot_grid(browser, url, out))
        written.append("task-grid.png")
        print(grid.markdown(grid.outcomes(runs, data.runs(runs))))
    print("\n".join(str(out / name) for name in written))


if __name__ == "__main__":
    main()
