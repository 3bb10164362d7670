"""Scrubbing latency in a real browser: serve the viewer on a run, drive headless Chromium with
Playwright, step the epoch slider N times and measure, in the page, from the key press (the
``keydown`` event's time) to the last document patch from the server that it caused
("applied"), and to the first animation frame after that patch ("painted"). Prints median and
p90 for the default page (every linked view of the first tab) and for one view alone
(``?view=neuron_heatmap``), the page load to interactive (the server's first session, then the
median of ``--loads`` later ones), and the time to read one neuron's (a, b) map from the store,
each against the goal from the viewer's issue. Each step goes to an epoch not shown before.
Each page load is a first visit: a new browser context (an empty cache) and a new server
session. Chromium is launched as the browser tests launch it (``tests/chromium.py``), without
the address bar pop-up page that it would otherwise build, in a renderer of its own, for
every new context (0.7-1.25 s of CPU beside each load measured; no user's visit pays it).

    .venv/bin/python bench/browser_latency.py --runs DIR [--run RUN_ID] [--steps 20]

With ``--sessions N``, instead: N pages (one browser, one context each, so N server sessions)
open the default page of the same run and scrub it at the same time, each step to an epoch not
shown before; the median and p90 step latency (applied) per session are printed against one
session alone measured in the same invocation, with their ratio. With ``--light`` as well, one
of the N is a page in Chromium (measured) and N - 1 are sessions without a browser
(``ws_session.py``: the server's work for them is the same, the drawing is not done), so that
N Chromiums drawing in software on the same cores do not stand in for the viewer's cost.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import chromium  # noqa: E402  (how Chromium is launched, shared with the browser tests)

APP = ROOT / "viz" / "app.py"
# Record when each server patch that changes a plot (its data, marker, colour range, ranges or
# title) is applied, and the animation frame after it (the paint). Widget and page-address
# patches do not count.
HOOK = """() => {
  const PLOT = new Set(["ColumnDataSource", "Span", "LinearColorMapper", "Range1d", "DataRange1d",
                        "FactorRange", "Title", "Figure", "Plot", "GlyphRenderer", "Image", "ColorBar"]);
  window.__patches = []; window.__painted = []; window.__key = 0;
  window.addEventListener('keydown', () => { window.__key = performance.now(); }, true);
  for (const doc of window.Bokeh.documents) {
    const apply = doc.apply_json_patch.bind(doc);
    doc.apply_json_patch = (patch, buffers) => {
      apply(patch, buffers);
      const plot = (patch.events || []).some(e => {
        const m = e.model && doc.get_model_by_id(e.model.id);
        return m != null && PLOT.has(m.constructor.__name__);
      });
      if (!plot) return;
      window.__patches.push(performance.now());
      requestAnimationFrame(() => setTimeout(() => window.__painted.push(performance.now()), 0));
    };
  }
}"""
# Resolves, in the page, with key press -> last plot patch (ms) once no patch came for ``quiet``
# ms (null after 20 s): the concurrent sessions wait without the benchmark polling each of them
# over CDP every 50 ms, which added CPU of its own to the 2 cores being measured.
SETTLED = """(quiet) => new Promise(resolve => {
  const start = performance.now();
  const check = () => {
    const now = performance.now(), last = Math.max(...window.__patches);
    if (window.__patches.length && now - last > quiet) return resolve(last - window.__key);
    if (now - start > 20000) return resolve(null);
    setTimeout(check, 25);
  };
  check();
})"""
GOALS = {"default": 150.0, "single": 80.0, "load": 3.0, "read": 5.0}


def serve(root: str, app: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(app), "--warm", "--address", "127.0.0.1",
                             "--port", str(port), f"--allow-websocket-origin=127.0.0.1:{port}"],
                            env={**os.environ, "TDW_RUNS": root, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):  # as `tdw serve` does it: --warm runs the app once before the port opens
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("viewer did not start")


def _quantiles(values: list[float]) -> str:
    v = sorted(values)
    return f"median {statistics.median(v):4.0f} ms, p90 {v[int(0.9 * (len(v) - 1))]:4.0f} ms"


def scrub(browser, url: str, steps: int, quiet_ms: float) -> tuple[float, list[float], list[float]]:
    """Open ``url``, wait until every plot is drawn, then press ArrowLeft on the slider
    ``steps`` times; returns (load seconds, applied ms, painted ms)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".noUi-handle", timeout=60_000)
    page.wait_for_function("Bokeh.documents.length > 0 && Bokeh.documents.every(d => d.is_idle)",
                           timeout=60_000, polling=20)
    load = time.perf_counter() - t
    time.sleep(1.5)
    page.evaluate(HOOK)
    handle = page.locator(".noUi-handle").first
    handle.focus()
    applied, painted = [], []
    for _ in range(steps):
        page.evaluate("window.__patches = []; window.__painted = []")
        handle.press("ArrowLeft")
        deadline = time.time() + 10
        while time.time() < deadline:
            time.sleep(0.05)
            key, patches, paints, now = page.evaluate(
                "[window.__key, window.__patches, window.__painted, performance.now()]")
            if patches and now - max(patches) > quiet_ms and len(paints) >= len(patches):
                applied.append(max(patches) - key)
                painted.append(max(paints) - key)
                break
    page.close()
    return load, applied, painted


def concurrent(browser, url: str, sessions: int, steps: int, quiet_ms: float,
               server_pid: int | None = None, light: int = 0) -> tuple[list[list[float]], tuple[float, float]]:
    """``sessions`` pages in their own contexts open ``url``, and ``light`` sessions without a
    browser (``ws_session``) open it too; then all step together: each round, every session
    gets its step at once and the round ends when every one has settled (each page times
    itself and reports once settled, see ``SETTLED``).
    Returns each session's applied latencies (ms; the pages' first), and the CPU seconds the
    viewer server (``server_pid``) and everything else of this benchmark (browsers, this
    script and its light sessions) used while stepping."""
    from urllib.parse import parse_qsl, urlsplit

    contexts = [browser.new_context(viewport={"width": 1400, "height": 1200}) for _ in range(sessions)]
    pages = [c.new_page() for c in contexts]
    for page in pages:
        page.goto(url)
    if light:
        from ws_session import Session

        address = urlsplit(url)
        clients = [Session(address._replace(query="").geturl(), dict(parse_qsl(address.query))) for _ in range(light)]
    else:
        clients = []
    handles = []
    for page in pages:
        page.wait_for_selector(".noUi-handle", timeout=120_000)
        page.wait_for_function("Bokeh.documents.length > 0 && Bokeh.documents.every(d => d.is_idle)",
                               timeout=120_000, polling=50)
    time.sleep(1.5)
    for page in pages:
        page.evaluate(HOOK)
        handles.append(page.locator(".noUi-handle").first)
        handles[-1].focus()
    applied: list[list[float]] = [[] for _ in (*pages, *clients)]
    server0, all0 = _tree_cpu_s(server_pid) if server_pid else 0.0, _tree_cpu_s(os.getpid())
    for _ in range(steps):
        for page in pages:
            page.evaluate("window.__patches = []; window.__painted = []")
        for client in clients:
            client.step()
        for page in pages:  # the key presses go out back to back: the sessions step together
            page.keyboard.press("ArrowLeft")
        for i, page in enumerate(pages):  # each waits in its page: no polling from here
            ms = page.evaluate(SETTLED, quiet_ms)
            if ms is not None:
                applied[i].append(ms)
        for i, client in enumerate(clients, len(pages)):
            ms = client.settled(quiet_ms / 1e3)
            if ms is not None:
                applied[i].append(ms)
    server = (_tree_cpu_s(server_pid) - server0) if server_pid else 0.0
    rest = _tree_cpu_s(os.getpid()) - all0 - server
    for c in (*contexts, *clients):
        c.close()
    return applied, (server, rest)


def _tree_cpu_s(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by ``root_pid`` and its living descendants."""
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, total = {root_pid}, 0.0
    for pid in sorted(parent):  # parents before children (pids grow), good enough for a tree
        if pid in tree or parent[pid] in tree:
            tree.add(pid)
            total += cpu.get(pid, 0.0)
    return total


def _p90(values: list[float]) -> float:
    v = sorted(values)
    return v[int(0.9 * (len(v) - 1))]


def read_time(root: str, run_id: str, n: int = 40) -> float:
    """Median ms to read one neuron's (a, b) map of one epoch from the store (uncached); of
    the last layer, as the page first shows it, where the store has a ``layer`` dimension."""
    from store.run_store import open_run

    st = open_run(root, run_id, mode="r")
    epochs, d_mlp = [int(e) for e in st.epochs], st.dims()["d_mlp"]
    layered = tuple(st.array_attrs("neuron_activations")["dims"][1:2]) == ("layer",)
    at = (st.sizes()["layer"] - 1,) if layered else ()
    st.read("neuron_activations", epochs[0], *at, 0)  # open the array once
    rng, times = random.Random(0), []
    for _ in range(n):
        e, neuron = rng.choice(epochs), rng.randrange(d_mlp)
        t = time.perf_counter()
        st.read("neuron_activations", e, *at, neuron)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="runs root")
    ap.add_argument("--run", help="run id (default: the last run)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--view", default="neuron_heatmap", help="the view measured alone")
    ap.add_argument("--quiet-ms", type=float, default=300, help="no patch for this long = settled")
    ap.add_argument("--loads", type=int, default=5, help="page loads timed per page (median)")
    ap.add_argument("--sessions", type=int, default=0,
                    help="N concurrent sessions scrubbing the run, against one session alone")
    ap.add_argument("--light", action="store_true",
                    help="with --sessions N: one session in Chromium (measured), N - 1 without a browser (bench/ws_session.py)")
    ap.add_argument("--app", default=str(APP), help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = os.path.abspath(args.runs)
    from store.run_store import list_runs

    run_id = args.run or list_runs(root)[-1]
    proc, port = serve(root, Path(args.app))
    results = {}
    try:
        with sync_playwright() as pw:
            browser = chromium.launch(pw)
            base = f"http://127.0.0.1:{port}/app?run={run_id}"
            if args.sessions:
                scrub(browser, base, 0, args.quiet_ms)  # the server's first session (imports)
                (alone,), cpu_alone = concurrent(browser, base, 1, args.steps, args.quiet_ms, proc.pid)
                light = args.sessions - 1 if args.light else 0
                together, cpu = concurrent(browser, base, args.sessions - light, args.steps, args.quiet_ms, proc.pid,
                                           light=light)
                browser.close()
                print(f"run {run_id} under {root}; {args.steps} slider steps (ArrowLeft) per session, "
                      f"default page, input -> last patch applied"
                      + (f"; session 1 in Chromium, sessions 2-{args.sessions} without a browser" if light else ""))
                print(f"1 session alone: median {statistics.median(alone):4.0f} ms, p90 {_p90(alone):4.0f} ms")
                for i, ms in enumerate(together):
                    if not ms:
                        print(f"session {i + 1}/{args.sessions}: no updates seen")
                        continue
                    print(f"session {i + 1}/{args.sessions}: median {statistics.median(ms):4.0f} ms, "
                          f"p90 {_p90(ms):4.0f} ms ({len(ms)}/{args.steps} steps), "
                          f"median ratio {statistics.median(ms) / statistics.median(alone):.2f}")
                every = [m for ms in (together[:1] if light else together) for m in ms]
                print(("the browser's session among them" if light else f"{args.sessions} sessions together")
                      + f": median {statistics.median(every):4.0f} ms, "
                      f"p90 {_p90(every):4.0f} ms; ratio to one session: median "
                      f"{statistics.median(every) / statistics.median(alone):.2f}, p90 {_p90(every) / _p90(alone):.2f} "
                      f"(goal 2.00)")
                for label, (server, rest), n in (("1 session alone", cpu_alone, args.steps),
                                                 (f"{args.sessions} sessions", cpu, args.sessions * args.steps)):
                    print(f"CPU per session-step while stepping, {label}: viewer server {server / n * 1e3:.0f} ms, "
                          f"browsers and this script {rest / n * 1e3:.0f} ms ({os.cpu_count()} cores for both)")
                return
            cold = scrub(browser, base, 0, args.quiet_ms)[0]  # the server's first session
            loads = {}
            for name, url in (("default", base), ("single", f"{base}&view={args.view}")):
                results[name] = scrub(browser, url, args.steps, args.quiet_ms)
                loads[name] = [results[name][0]] + [scrub(browser, url, 0, args.quiet_ms)[0]
                                                    for _ in range(args.loads - 1)]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    read_ms = read_time(root, run_id)
    print(f"run {run_id} under {root}; {args.steps} slider steps (ArrowLeft) per page")
    print(f"{'':34} {'input -> last patch applied':30} {'-> painted':26} goal (median)")
    for name, label in (("default", "default page (all linked views)"), ("single", f"one view ({args.view})")):
        load, applied, painted = results[name]
        if not applied:
            print(f"{label:34} no updates seen")
            continue
        print(f"{label:34} {_quantiles(applied):30} {_quantiles(painted):26} "
              f"{GOALS[name]:.0f} ms (ratio {statistics.median(applied) / GOALS[name]:.2f})")
    spread = {k: f"median {statistics.median(v):.2f} s ({min(v):.2f}-{max(v):.2f})" for k, v in loads.items()}
    print(f"page load to interactive (every plot drawn), {args.loads} loads each: default page {spread['default']}, "
          f"one view {spread['single']} (goal {GOALS['load']:.0f} s); {cold:.2f} s for the server's first session")
    print(f"read one neuron's (a, b) map: median {read_ms:.2f} ms (goal {GOALS['read']:.0f} ms)")


if __name__ == "__main__":
    main()
