"""The layer picker in a real browser (headless Chromium, as ``tests/test_browser.py`` drives it):
on a synthetic 2-layer run (``tests.layered_stores``) picking a layer refills the per-layer
views, leaves the others alone and lands in the page address; an address with ``layer=``
opens at that layer; a 1-layer run shows no picker."""

import os
import subprocess
import sys

import pytest

from tests.chromium import PATH as CHROMIUM, launch
from tests.layered_stores import synthetic_run
from tests.test_browser import PLOTS, _answers as answers, _free_port as free_port
from tests.wait import wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "viz", "app.py")
PER_LAYER = ["neuron_heatmap", "neuron_grid", "neuron_frequencies"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("layer-runs"))
    synthetic_run(root, "L1", 1, seed=1)
    synthetic_run(root, "L2", 2, seed=2)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", APP, "--address", "127.0.0.1", "--port", str(port),
         f"--allow-websocket-origin=127.0.0.1:{port}"],
        env={**os.environ, "TDW_RUNS": root, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/app"
    wait_for(lambda: answers(url), 60, interval=0.3, what=f"the viewer at {url}")
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


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_function(f"(() => {{ const p = ({PLOTS})(); return {PER_LAYER!r}.every(n => n in p); }})()",
                           timeout=60_000)
    return page


def _until(page, check, timeout: float = 15.0):
    seen = {}

    def reached():
        seen["plots"] = plots = page.evaluate(PLOTS)
        return plots if check(plots) else None

    return wait_for(reached, timeout, interval=0.1, what=lambda: f"the plots to reach the state: {seen.get('plots')}")


def test_the_layer_picker_changes_the_per_layer_views_and_the_address(browser, server):
    page = _open(browser, f"{server}?run=L2")
    before = page.evaluate(PLOTS)
    assert all(before[n]["title"].endswith("· layer 1") for n in PER_LAYER)  # the last layer first
    picker = page.get_by_label("Layer", exact=True)
    assert picker.is_visible()
    picker.select_option("layer 0")
    now = _until(page, lambda p: all(p[n]["title"].endswith("· layer 0") for n in PER_LAYER))
    assert all(now[n]["sum"] != before[n]["sum"] for n in PER_LAYER)
    assert now["loss"]["sum"] == before["loss"]["sum"]  # not per layer
    page.wait_for_function("window.location.search.includes('layer=0')", timeout=10_000)
    shared = _open(browser, f"{server}?run=L2&layer=0")
    opened = shared.evaluate(PLOTS)
    assert all(opened[n]["title"].endswith("· layer 0") for n in PER_LAYER)
    assert opened["neuron_frequencies"]["sum"] == now["neuron_frequencies"]["sum"]
    assert not page.errors and not shared.errors
    shared.close()
    page.close()


def test_a_one_layer_run_shows_no_picker(browser, server):
    page = _open(browser, f"{server}?run=L1")
    plots = page.evaluate(PLOTS)
    assert not any("layer" in plots[n]["title"] for n in PER_LAYER)
    assert page.get_by_label("Layer", exact=True).count() == 0 or not page.get_by_label("Layer", exact=True).is_visible()
    assert "layer=" not in page.evaluate("window.location.search")
    page.close()
