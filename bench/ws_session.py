"""A viewer session without a browser: Bokeh's own client (``bokeh.client``) holds the page's
document over the same websocket protocol a browser uses, and steps the epoch slider as a key
press would. The server does for it all it does for a browser session (the page's build, the
read-ahead after load, each step's updates and their serialisation); only the drawing is
missing. ``browser_latency.py --sessions N --light`` measures one real browser among N - 1 of
these: on a 2-core machine, N headless Chromiums drawing in software measure mostly their own
CPU (~0.2-0.3 s a step each), not the viewer's.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bokeh.client import pull_session  # noqa: E402
from bokeh.events import DocumentReady  # noqa: E402
from bokeh.models import Slider  # noqa: E402

for _module in ("panel", "viz.run_view"):  # Panel's and the viewer's models, for the document received
    importlib.import_module(_module)
# patches to these count as a plot update (as in browser_latency.HOOK): not the widgets' or the address's
PLOT = {"ColumnDataSource", "Span", "LinearColorMapper", "Range1d", "DataRange1d", "FactorRange", "Title",
        "Figure", "Plot", "GlyphRenderer", "Image", "ColorBar"}


class Session:
    """One session of the page at ``url`` (``arguments``: the page address's query)."""

    def __init__(self, url: str, arguments: dict[str, str]):
        self.stamps: list[float] = []  # when each plot patch of the current step was applied
        self._t0, self._closed, self._ready = 0.0, False, threading.Event()
        # the session lives in a thread of its own, with its own event loop (the caller may run
        # one, as Playwright's does); its document is changed only there
        threading.Thread(target=self._run, args=(url, arguments), daemon=True).start()
        if not self._ready.wait(120) or self._failed:
            raise RuntimeError(f"no session from {url}: {self._failed}")

    def _run(self, url: str, arguments: dict[str, str]) -> None:
        self._failed = None
        try:
            self._session = pull_session(url=url, arguments=arguments)
            doc = self._session.document
            apply = doc.apply_json_patch

            def applied(patch, setter=None):
                apply(patch, setter=setter)
                content = getattr(patch, "content", patch)  # bokeh's Serialized, or the JSON itself
                events = content.get("events", []) if isinstance(content, dict) else []
                if any(type(doc.get_model_by_id(_model_id(e))).__name__ in PLOT for e in events):
                    self.stamps.append(time.perf_counter())
            doc.apply_json_patch = applied
            self.slider = next(m for m in doc.models if isinstance(m, Slider) and m.title == "Epoch")
            self._connection = self._session._connection
            self._call(lambda: doc.callbacks.send_event(DocumentReady()))  # a browser says so once drawn
        except Exception as exc:  # said by the constructor
            self._failed = exc
            return
        finally:
            self._ready.set()
        self._connection._loop_until(lambda: self._closed)

    def _call(self, fn) -> None:
        self._connection._loop.add_callback(fn)

    def step(self) -> None:
        """One step back (ArrowLeft), to an epoch not shown before when started at the last."""
        self.stamps = []
        self._t0 = time.perf_counter()
        value = self.slider.value - 1 if self.slider.value > self.slider.start else self.slider.end
        self._call(lambda: setattr(self.slider, "value", value))

    def settled(self, quiet_s: float, timeout_s: float = 20.0) -> float | None:
        """Ms from the step to its last plot patch, once none came for ``quiet_s`` (None: none came)."""
        while time.perf_counter() - self._t0 < timeout_s:
            stamps = self.stamps
            if stamps and time.perf_counter() - stamps[-1] > quiet_s:
                return (stamps[-1] - self._t0) * 1e3
            time.sleep(0.01)
        return None

    def close(self) -> None:
        self._closed = True
        self._call(self._session.close)


def _model_id(event: dict) -> str | None:
    ref = event.get("model") or event.get("column_source") or {}
    return ref.get("id") if isinstance(ref, dict) else None
