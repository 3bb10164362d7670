"""How the browser tests and the benchmarks launch Debian's Chromium (headless, through
Playwright; never a browser of Playwright's own download).

Chromium 156 builds the address bar's pop-up as a page of its own (the omnibox WebUI, in a
renderer process of its own) for every new window, and Playwright opens a new window for
every browser context: ~0.7-1.2 s of CPU per context, spent while the page being tested or
measured loads beside it on the machine's two cores. No user pays it (their window is open
before they load the viewer), so it is turned off here. Chromium keeps only the last
``--disable-features`` switch it is given, and Playwright gives its own; ours is last, so it
carries Playwright's list as well."""

from __future__ import annotations

import shutil

PATH = shutil.which("chromium") or "/usr/bin/chromium"
_PLAYWRIGHT_DISABLES = (  # Playwright 1.65's own --disable-features list (the ones that apply on Linux)
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch")
_OMNIBOX_POPUP = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")  # both: either one alone still builds a pop-up page
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-features=" + ",".join(_PLAYWRIGHT_DISABLES + _OMNIBOX_POPUP)]


def launch(pw):
    """Headless Chromium from a started ``sync_playwright()``."""
    return pw.chromium.launch(executable_path=PATH, args=ARGS)
