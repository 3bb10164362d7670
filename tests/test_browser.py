"""The viewer in a real browser: headless Debian Chromium driven by Playwright."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
APP = Path(__file__).resolve().parent.parent / "viz" / "app.py"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]

# Sum of every image and bar source in the Bokeh documents: changes when any plot's data does.
PLOT_DATA = """() => {
  const sums = {};
  for (const doc of window.Bokeh.documents) {
    for (const m of doc.all_models) {
      if (!m.data) continue;
      for (const key of ["image", "norm", "top"]) {
        if (!(key in m.data)) continue;
        let arr = m.data[key]; if (key === "image") arr = arr[0];
        let s = 0; for (let i = 0; i < arr.length; i++) { const v = Number(arr[i]); if (v === v) s += v * ((i % 7) + 1); }
        sums[m.id + ":" + key] = s;
      }
    }
  }
  return sums;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smoke_run):
    root, cfg = smoke_run
    port = _free_port()
    env = {**os.environ, "TDW_RUNS": root}
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(APP), "--address", "127.0.0.1", "--port", str(port),
         f"--allow-websocket-origin=127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    yield url, cfg
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1200})
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server[0])
        pg.wait_for_function(f"Object.keys(({PLOT_DATA})()).length >= 4", timeout=60_000)
        yield pg, errors
        browser.close()


def _wait_change(pg, before: dict, timeout: float = 20.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = pg.evaluate(PLOT_DATA)
        changed = {k for k in now if k in before and now[k] != before[k]}
        if changed:
            time.sleep(0.5)  # let the remaining views land
            return pg.evaluate(PLOT_DATA)
        time.sleep(0.1)
    raise AssertionError("no plot data changed")


def test_page_loads_with_every_view(page):
    pg, errors = page
    sums = pg.evaluate(PLOT_DATA)
    assert len([k for k in sums if k.endswith(":image")]) >= 3  # heatmap, grid, neuron × frequency
    assert any(k.endswith(":norm") or k.endswith(":top") for k in sums)  # spectrum bars
    assert pg.get_by_text("Epoch").first.is_visible()
    assert not errors


def test_moving_the_slider_changes_the_plots(page, server):
    pg, errors = page
    _, cfg = server
    before = pg.evaluate(PLOT_DATA)
    handle = pg.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowLeft")
    after = _wait_change(pg, before)
    changed = [k for k in after if k in before and after[k] != before[k]]
    assert len(changed) >= 3, changed  # spectrum, heatmap, grid, neuron × frequency move together
    label = pg.get_by_text(re.compile(r"Epoch:")).first.inner_text()
    assert label.replace(" ", "").endswith(f":{cfg.checkpoint_epochs[-2]}"), label
    assert not errors


def test_picking_a_neuron_changes_the_heatmap(page):
    pg, errors = page
    before = pg.evaluate(PLOT_DATA)
    box = pg.locator("input[type=number], input.bk-input").last
    box.fill("7")
    box.press("Enter")
    after = _wait_change(pg, before)
    assert sum(after[k] != before.get(k) for k in after) >= 1
    assert not errors
