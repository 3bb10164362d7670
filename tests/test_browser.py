"""The viewer in a real browser: headless Debian Chromium driven by Playwright, like a user.
Every interaction asserts that the plots' data in the page changed (the Bokeh models the
browser draws), not just that nothing failed. One server for the module, on a root holding
the smoke run and a second run (another seed) to switch to and compare with."""

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

from tests.chromium import PATH as CHROMIUM, launch
from tests.wait import wait_for

APP = Path(__file__).resolve().parent.parent / "viz" / "app.py"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
# a closed page's session is discarded ~0.2 s later (Bokeh's default: ~15-30 s), as it would
# be in a long-running server between a visit and the next
SERVER_LOG = {}  # "path": the viewer server's log (its stderr)
SESSION_ENDS_AT_ONCE = ["--check-unused-sessions", "100", "--unused-session-lifetime", "100"]
VIEWS = ["loss", "accuracy", "embedding_spectrum", "spectrum_evolution", "neuron_heatmap", "neuron_grid",
         "neuron_frequencies"]

# Per named figure: a weighted sum of its data (images, bars, curves), its epoch marker and title.
PLOTS = """() => {
  const out = {};
  for (const doc of window.Bokeh.documents) for (const m of doc.all_models) {
    if (!m.name || m.renderers === undefined || m.center === undefined) continue;
    let sum = 0;
    for (const r of m.renderers) {
      const src = r.data_source; if (!src) continue;
      for (const key of ["image", "rgba", "value", "y"]) {  // rgba: an image sent as its colours
        if (!(key in src.data)) continue;
        let arr = src.data[key]; if (key === "image" || key === "rgba") arr = arr[0];
        for (let i = 0; i < arr.length; i++) {
          const v = key === "rgba" ? arr[i] & 0xffffff : Number(arr[i]); if (v === v) sum += v * ((i % 7) + 1);
        }
      }
    }
    const marks = m.center.filter(c => c.dimension === "height" && c.level === "overlay").map(c => c.location);
    out[m.name] = {sum: sum, marker: marks.length ? marks[0] : null, title: m.title ? m.title.text : ""};
  }
  return out;
}"""
# Page coordinates of data point (x, y) in the named figure.
POINT = """([name, x, y]) => {
  for (const doc of window.Bokeh.documents) for (const m of doc.all_models) {
    if (m.name !== name || m.renderers === undefined) continue;
    const view = Bokeh.index.find_one(m);
    const box = view.canvas_view.el.getBoundingClientRect();
    return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(smoke_run, tmp_path_factory):
    """A root with a copy of the smoke run and a second smoke run (model seed 7)."""
    from store import layout
    from tasks.config import preset
    from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run, train_run

    root, cfg = smoke_run
    here = str(tmp_path_factory.mktemp("browser-runs"))
    shutil.copytree(layout.run_dir(root, cfg.run_id), layout.run_dir(here, cfg.run_id))
    other = prepare_run(here, preset("smoke", seed=7))
    epochs = []
    train_run(here, other, device="cpu", on_checkpoint=epochs.append)
    choose_key_frequencies(here, other.run_id)
    for epoch in epochs:
        analyze_epoch(here, other.run_id, epoch)
    return here, cfg, other


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    root = runs[0]
    port = _free_port()
    SERVER_LOG["path"] = log = tmp_path_factory.mktemp("viewer-log") / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(APP), "--warm", "--address", "127.0.0.1", "--port", str(port),
         f"--allow-websocket-origin=127.0.0.1:{port}", *SESSION_ENDS_AT_ONCE],
        env={**os.environ, "TDW_RUNS": root, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
        stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}/app"
    wait_for(lambda: _answers(url), 60, interval=0.3, what=f"the viewer at {url}")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


def _open(browser, url: str, init_script: str | None = None):
    page = browser.new_page(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
    if init_script:
        page.add_init_script(init_script)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector(".noUi-handle", timeout=60_000)
    page.wait_for_function(f"(() => {{ const p = ({PLOTS})(); return {VIEWS!r}.every(n => n in p); }})()",
                           timeout=60_000)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    pg = _open(browser, server)
    yield pg
    pg.close()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
        return True
    except OSError:
        return False


def _until(pg, check, timeout: float = 15.0):
    """Poll the plots until ``check(plots)`` holds; returns them."""
    seen = {}

    def reached():
        seen["plots"] = plots = pg.evaluate(PLOTS)
        return plots if check(plots) else None

    return wait_for(reached, timeout, interval=0.1,
                    what=lambda: f"the page to reach the expected state: {seen.get('plots')}")


def _changed(before: dict, names) -> callable:
    return lambda now: all(now[n]["sum"] != before[n]["sum"] for n in names)


def test_page_loads_with_every_view(page, runs):
    _, cfg, _ = runs
    plots = page.evaluate(PLOTS)
    last = cfg.checkpoint_epochs[-1]
    for name in ("loss", "accuracy", "spectrum_evolution"):
        assert plots[name]["marker"] == last  # the current epoch marked
    for name in ("embedding_spectrum", "neuron_heatmap", "neuron_grid", "neuron_frequencies"):
        assert plots[name]["sum"] > 0, name
    assert "Epoch: " in page.get_by_text(re.compile("Epoch:")).first.inner_text()
    assert not page.errors


def test_slider_moves_every_linked_view(page, runs):
    _, cfg, _ = runs
    before = page.evaluate(PLOTS)
    handle = page.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowLeft")
    previous = cfg.checkpoint_epochs[-2]
    now = _until(page, lambda p: _changed(before, ["embedding_spectrum", "neuron_heatmap", "neuron_grid",
                                                    "neuron_frequencies"])(p) and p["loss"]["marker"] == previous)
    assert now["accuracy"]["marker"] == now["spectrum_evolution"]["marker"] == previous
    assert now["loss"]["sum"] == before["loss"]["sum"]  # the long curves are not resent
    label = page.get_by_text(re.compile(r"Epoch:")).first.inner_text()
    assert label.replace(" ", "").endswith(f":{previous}"), label
    assert not page.errors


# Every property change the page sends the server: (model type, attribute), from its PATCH-DOCs.
SENT = """
window.__sent = [];
const Socket = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Socket(...args), send = ws.send.bind(ws);
  ws.send = (data) => {
    if (typeof data == "string" && data.startsWith('{"events"'))
      for (const e of JSON.parse(data).events) if (e.kind == "ModelChanged") window.__sent.push(e);
    send(data);
  };
  return ws;
};
window.WebSocket.prototype = Socket.prototype;
"""


def test_a_step_sends_the_server_only_the_epoch_and_the_address(browser, server):
    """A slider step's messages to the server: the slider's value (as ``value`` and
    ``value_throttled``) and the page's new address, nothing a plot computed in the browser
    (the spectrum's y range follows its bars there; sent back, it was one more message a step
    for the server to handle, for each session)."""
    pg = _open(browser, server, SENT)
    try:
        pg.wait_for_function("Bokeh.documents.every(d => d.is_idle)", timeout=30_000)
        time.sleep(1.0)  # a quiet second, so that what the load itself sends is not counted
        pg.evaluate("window.__sent = []")
        handle = pg.locator(".noUi-handle").first
        handle.focus()
        for _ in range(3):
            before = pg.evaluate(PLOTS)["embedding_spectrum"]["sum"]
            handle.press("ArrowLeft")
            _until(pg, lambda now: now["embedding_spectrum"]["sum"] != before)
        time.sleep(0.5)  # what the last step sends after its plots changed (the address) is counted too
        sent = pg.evaluate("""window.__sent.map(e => {
          const m = Bokeh.documents[0].get_model_by_id(e.model.id);
          return [m ? m.constructor.__name__ : '?', e.attr];
        })""")
    finally:
        pg.close()
    kinds = {tuple(k) for k in sent}
    assert ("Slider", "value") in kinds and ("Location", "href") in kinds, kinds
    assert kinds <= {("Slider", "value"), ("Slider", "value_throttled"), ("Location", "href")}, kinds


def test_keyboard_steps_and_the_player_plays(page, runs):
    _, cfg, _ = runs
    epochs = list(cfg.checkpoint_epochs)
    page.locator("body").click(position={"x": 5, "y": 5})  # focus the page, not a field
    page.keyboard.press("Home")
    _until(page, lambda p: p["loss"]["marker"] == epochs[0])
    page.keyboard.press("ArrowRight")
    _until(page, lambda p: p["loss"]["marker"] == epochs[1])
    before = page.evaluate(PLOTS)
    page.locator("button.play").first.click()
    seen = set()
    deadline = time.time() + 20
    while time.time() < deadline and epochs[-1] not in seen:
        seen.add(page.evaluate(PLOTS)["loss"]["marker"])
        time.sleep(0.05)  # sampling the marker as it plays, not waiting for it
    assert {epochs[-1]} < seen <= set(epochs[1:])  # played through to the end
    assert _changed(before, ["neuron_heatmap", "neuron_grid"])(page.evaluate(PLOTS))
    assert not page.errors


def test_picking_a_neuron_changes_the_heatmap_and_the_address(page):
    before = page.evaluate(PLOTS)
    box = page.get_by_label("Neuron", exact=True)
    box.fill("7")
    box.press("Enter")
    now = _until(page, lambda p: "neuron 7" in p["neuron_heatmap"]["title"])
    assert now["neuron_heatmap"]["sum"] != before["neuron_heatmap"]["sum"]
    page.get_by_role("button", name="▶").click()
    after = _until(page, lambda p: "neuron 7" not in p["neuron_heatmap"]["title"])
    assert after["neuron_heatmap"]["sum"] != now["neuron_heatmap"]["sum"]
    neuron = re.search(r"neuron (\d+)", after["neuron_heatmap"]["title"]).group(1)
    page.wait_for_function(f"window.location.search.includes('neuron={neuron}')", timeout=10_000)
    assert not page.errors


def test_clicking_the_loss_curve_jumps_to_the_nearest_checkpoint(page, runs):
    _, cfg, _ = runs
    epochs = list(cfg.checkpoint_epochs)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("End")
    before = _until(page, lambda p: p["loss"]["marker"] == epochs[-1])
    x, y = page.evaluate(POINT, ["loss", epochs[1] + 4, 1.0])
    page.mouse.click(x, y)
    now = _until(page, lambda p: p["loss"]["marker"] == epochs[1])
    assert _changed(before, ["neuron_heatmap", "embedding_spectrum"])(now)
    page.wait_for_function(f"window.location.search.includes('epoch={epochs[1]}')", timeout=10_000)
    assert not page.errors


def test_switching_runs_and_opening_a_shared_address(browser, server, page, runs):
    _, cfg, other = runs
    before = page.evaluate(PLOTS)
    page.locator("select").first.select_option(other.run_id)
    now = _until(page, lambda p: _changed(before, ["neuron_grid", "embedding_spectrum", "neuron_frequencies"])(p))
    assert now["loss"]["sum"] != before["loss"]["sum"]  # the other run's curves
    epoch = other.checkpoint_epochs[2]
    shared = _open(browser, f"{server}?run={other.run_id}&epoch={epoch}&neuron=5")
    plots = shared.evaluate(PLOTS)
    assert plots["loss"]["marker"] == epoch and "neuron 5" in plots["neuron_heatmap"]["title"]
    assert shared.locator("select").first.input_value() == other.run_id
    shared.close()
    assert not page.errors


def test_a_reload_after_the_last_page_closed_is_served_whole(browser, server, page, runs):
    """A page built in one session (the spare page made once a page has loaded) is served in a
    later one after the first has ended. Bokeh clears the namespace of an ended session's copy
    of the served script, so nothing the page runs may live there: before ``viz.viewer`` such a
    reload failed in the server ("name 'pn' is not defined") after its views were built, so the
    page was never given its address, nor its live refresh."""
    from viz import data

    last = data.runs(runs[0])[-1]  # what /app shows
    for _ in range(2):  # a closed page, then a reload that takes the spare it left
        first = _open(browser, server)
        first.close()
        time.sleep(1.0)  # its session is discarded meanwhile
    again = _open(browser, server)
    again.wait_for_function("window.location.search.includes('epoch=')", timeout=10_000)  # the page's address
    assert f"run={last}" in again.evaluate("window.location.search")
    before = again.evaluate(PLOTS)
    again.locator(".noUi-handle").first.press("ArrowLeft")  # its callbacks work
    _until(again, _changed(before, ["neuron_heatmap", "neuron_grid"]))
    assert not again.errors
    again.close()
    log = SERVER_LOG["path"].read_text()
    assert "Error running application handler" not in log and "is not defined" not in log, log[-2000:]


def test_export_downloads_a_standalone_html(page):
    page.locator("select").filter(has_text="neuron_heatmap").select_option("neuron_heatmap")
    time.sleep(0.5)  # the choice reaches the server (nothing on the page shows that it has)
    with page.expect_download() as info:
        page.get_by_role("button", name="HTML").click()
    path = info.value.path()
    html = Path(path).read_text()
    assert info.value.suggested_filename.endswith(".html") and "neuron_heatmap" in info.value.suggested_filename
    assert "MLP neuron activation" in html and len(html) > 100_000


def test_compare_overlays_the_runs(page, runs):
    _, cfg, other = runs
    page.get_by_text("Compare runs", exact=True).click()
    lines = """() => { const ys = [];
      for (const doc of Bokeh.documents) for (const m of doc.all_models)
        if (m.name === "compare") for (const r of m.renderers)
          ys.push(Array.from(r.data_source.data.y).slice(0, 40).join(","));
      return ys; }"""
    wait_for(lambda: len(set(page.evaluate(lines))) >= 2, 30, interval=0.2,
             what="one curve per run, each its own data")
    assert len(page.evaluate(lines)) == 2
    page.get_by_text("task × fraction grid", exact=True).click()  # both runs: one cell, add at their fraction
    cells = """() => { for (const doc of Bokeh.documents) for (const m of doc.all_models)
        if (m.name === "task_grid" && Bokeh.index.find_one(m)) return Array.from(m.renderers[0].data_source.data.row);
      return null; }"""
    page.wait_for_function(f"({cells})() !== null", timeout=30_000)
    assert page.evaluate(cells) == ["add: (a + b) mod p"]
    page.get_by_text("curves", exact=True).click()
    page.get_by_text("Run", exact=True).first.click()


def test_train_page_validates_and_starts_a_run(page, runs):
    root, cfg, other = runs
    page.get_by_text("Train", exact=True).click()
    p_box = page.get_by_label("modulus p (odd prime)")
    p_box.fill("33")
    p_box.press("Enter")
    page.get_by_text(re.compile("odd prime >= 3")).first.wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Start training").is_disabled()
    p_box.fill("31")
    p_box.press("Enter")
    seed = page.get_by_label("model seed", exact=True)
    seed.fill("11")
    seed.press("Enter")
    wait_for(lambda: page.get_by_text(re.compile("odd prime >= 3")).count() == 0, 10,
             what="the message for p = 33 to go once p is 31")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"p31-s11-d598-\w+")).first.wait_for(timeout=15_000)
    page.get_by_text(re.compile(r"finished · epoch 149/149")).first.wait_for(timeout=150_000)
    page.get_by_text(re.compile(r"analysed 5 checkpoint")).first.wait_for(timeout=90_000)  # load-tolerant
    page.get_by_role("button", name="Open").first.click()
    page.wait_for_function("window.location.search.includes('run=p31-s11-')", timeout=15_000)
    plots = _until(page, lambda p: all(n in p for n in VIEWS), timeout=30)
    assert plots["neuron_heatmap"]["sum"] > 0
    assert not page.errors

