"""``tests.chromium``: how the browser tests and benchmarks launch Chromium, checked against the
Chromium installed (a renamed feature would silently bring the omnibox pop-up page back)."""

import os

import pytest

from tests.chromium import PATH, launch
from tests.wait import wait_for

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(PATH), reason="Debian's chromium is not installed")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


def _renderers() -> int:
    """Chromium renderer processes started by this test process (through Playwright's driver)."""
    parent, args = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent[pid] = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
            args[pid] = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
    ours = {str(os.getpid())}
    for _ in range(6):  # this process -> driver -> browser -> zygote -> renderers
        ours |= {pid for pid, ppid in parent.items() if ppid in ours}
    return sum(b"--type=renderer" in args[pid] for pid in ours if pid in args)


def test_a_new_page_costs_the_browser_one_renderer(browser):
    """Without ``tests.chromium``'s switch, Chromium builds its address bar's pop-up (a renderer
    of its own) for every new window, and so for every page the tests and benchmarks open."""
    counts = []

    def settled() -> bool:  # the renderers of pages closed before have exited: two counts agree
        counts.append(_renderers())
        return len(counts) > 1 and counts[-1] == counts[-2]

    wait_for(settled, 10, interval=0.3, what=lambda: f"the renderer count to settle: {counts}")
    before = counts[-1]
    pages = [browser.new_page() for _ in range(2)]
    for pg in pages:
        pg.goto("data:text/html,<p>a page</p>")
    grew = _renderers() - before
    for pg in pages:
        pg.close()
    # one each, and one spare that Chromium keeps ready for the next navigation (5 without the switch)
    assert grew <= len(pages) + 1, f"{grew} renderers for 2 new pages: the omnibox pop-up is being built again"
