"""The machinery that makes scrubbing cheap: views are Bokeh figures built once, and a slider
step only refills their data sources (``source.data.update`` sends the changed columns alone)
or moves a marker. Nothing is re-rendered or re-laid out on a step.

- ``EpochView``: a figure whose sources are refilled for each epoch; ``load`` reads (cached,
  safe in a background thread), ``draw`` fills the sources.
- ``CurveView``: an over-training figure drawn once from a HoloViews element; a step moves
  only its epoch marker (the long curves are not resent), a click jumps to the nearest epoch.
- ``EpochSlider``: the one epoch ``DiscreteSlider``, sending each step at once.
- ``after_load``: work (the read-ahead) deferred until the served page is drawn.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import holoviews as hv
import panel as pn
from bokeh.events import Tap
from bokeh.models import CustomJSTickFormatter, GlyphRenderer, Span

from viz import curves
from viz.curves import TOOLBAR, TOOLS  # noqa: F401  (the views' figures share them)

LAYER_SUFFIX = re.compile(r" · layer \d+$")  # the layer a per-layer view's title names
# level "overlay": the marker is drawn on the plot's overlay layer, so moving it repaints that
# layer alone, not the curves beneath
MARKER = dict(dimension="height", line_color="#555555", line_dash="dashed", line_width=1.5, level="overlay")


def lean(fig):
    """Drop the glyph variants Bokeh makes for every renderer that no view here uses: nothing on
    these pages selects (no selection tool: a click on a curve is a ``Tap`` event, which needs
    none), and only a curve in a legend can be muted. Two models fewer per renderer (~10% of
    a page's models, each one built, sent and set up in the browser on every page load). The
    toolbar shows while the pointer is on the plot."""
    legend = {r.id for group in fig.legend for item in group.items for r in item.renderers}
    for r in fig.renderers:
        if isinstance(r, GlyphRenderer):
            r.nonselection_glyph = None
            if r.id not in legend:
                r.muted_glyph = None
    fig.toolbar.autohide = True
    return fig

_prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdw-prefetch")


def after_load(fn: Callable[[], None]) -> None:
    """``fn()`` once a served page is drawn in the browser (so that its reads do not compete
    with serving and building the page); at once outside a session being served (a spare
    page's throwaway document would keep the callback, never run, and the page with it)."""
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None and not pn.state.loaded:
        pn.state.onload(fn)
    else:
        fn()


class EpochSlider(pn.widgets.DiscreteSlider):
    """The epoch slider: a ``DiscreteSlider`` over the checkpoint epochs, made cheap to step.

    - Panel waits 50 ms after a widget change for more changes before it processes them; a step
      of the slider, the keyboard or the player is one value, so this slider's steps are
      processed at once.
    - ``DiscreteSlider`` shows its value in a separate text element that it rewrites on every
      step, and each rewrite makes the browser lay out the whole page again (~90 ms a step
      here, more than the server's work). The inner slider shows the epoch in its own title
      instead (the index it holds formatted as the epoch), which moves no layout.
    - A key press on the slider sends two changes, its ``value`` and its ``value_throttled``.
      Panel marks the page busy around each widget change (``pn.state.busy``: bookkeeping on
      its global state object, ~1 ms a change here); nothing on these pages shows busy, so this
      slider's changes do not. ``value_throttled`` is not used (the views follow ``value`` at
      once), so it is not copied on to this widget either. A session-step costs the server
      ~2 ms less of its ~15 ms, which counts when several sessions share one server."""

    def _update_options(self, *events):
        if len(self._composite) == 1:  # options changed: the superclass swaps the slider at index 1
            self._composite.objects = [self._text, *self._composite]
        super()._update_options(*events)
        slider = self._slider  # rebuilt by the superclass whenever the options change
        slider._debounce = 0
        slider._busy__ignore = ["value", "value_throttled"]
        for watcher in slider.param.watchers.get("value_throttled", {}).get("value", []):
            if watcher.parameter_names == ("value_throttled",) and getattr(watcher.fn, "__self__", None) is self:
                slider.param.unwatch(watcher)  # the superclass's copy of it on to this widget
        self._jslink.unlink()
        epochs = [str(v) for v in self.values] or ["-"]
        slider.param.update(name=self.label, show_value=True, format=CustomJSTickFormatter(
            args={"epochs": epochs}, code="return epochs[Math.round(tick)] ?? ''"))
        self._composite[:] = [slider]


class EpochView:
    """A figure whose data sources are refilled for each epoch. Subclasses set ``figure`` and
    implement ``load(epoch)`` (reads only) and ``draw(loaded)`` (fill the sources)."""

    name = ""
    figure: Any = None
    layer: int | None = None  # the model layer shown, once picked (``set_layer``); None: layer 0, untitled

    def set_layer(self, layer: int) -> None:
        """Show ``layer`` of the per-layer variables read, from the next ``show`` on, and name it
        in the title (``... · layer 1``)."""
        self.layer = int(layer)
        self.figure.title.text = f"{LAYER_SUFFIX.sub('', self.figure.title.text)} · layer {self.layer}"

    def load(self, epoch: int) -> Any:
        raise NotImplementedError

    def draw(self, loaded: Any) -> None:
        raise NotImplementedError

    def show(self, epoch: int) -> None:
        self.epoch = epoch
        self.draw(self.load(epoch))

    def clone(self) -> "EpochView":
        """A new view with the same choices, its figure in no document (for export)."""
        raise NotImplementedError

    def standalone(self, epoch: int):
        """A fresh figure of this view at ``epoch`` (titled with it), for a standalone file."""
        view = self.clone()
        if self.layer is not None:
            view.set_layer(self.layer)
        view.show(epoch)
        view.figure.title.text = f"{view.figure.title.text} · epoch {epoch}"
        return view.figure

    def prefetch(self, epochs: list[int]) -> None:
        """Read these epochs in the background, in this order, so that the next steps find them
        cached; a later call replaces the epochs not read yet (scrubbing moves on)."""
        self._generation = generation = getattr(self, "_generation", 0) + 1

        def read() -> None:
            for epoch in epochs:
                if self._generation != generation:
                    return
                self.load(epoch)
        _prefetcher.submit(read)

    def pane(self) -> pn.pane.Bokeh:
        return pn.pane.Bokeh(lean(self.figure), name=self.name)


class CurveView:
    """An over-training view: ``element()`` -> HoloViews element, rendered to Bokeh once, plus
    an epoch marker. ``on_tap(x)`` is called with the data x of a click on the plot."""

    def __init__(self, name: str, element: Callable[[], hv.Element], on_tap: Callable[[float], None] | None = None):
        self.name, self.element, self.on_tap = name, element, on_tap
        self.marker = Span(location=0, **MARKER)
        self.figure = None  # rendered when first shown (a hidden tab costs nothing)
        self._pane: pn.pane.Bokeh | None = None  # made when first laid out, likewise

    def _render(self, marker: Span):
        fig = lean(curves.render(self.element()))
        fig.name = self.name
        fig.add_layout(marker)
        if self.on_tap is not None:
            fig.on_event(Tap, lambda event: self.on_tap(event.x))
        return fig

    def show(self, epoch: int) -> None:
        self.marker.location = epoch
        if self.figure is None:
            self.figure = self._render(self.marker)
            if self._pane is not None:
                self._pane.object = self.figure

    def standalone(self, epoch: int):
        """A fresh figure of this view with the marker at ``epoch``, for a standalone file."""
        fig = curves.render(self.element())
        fig.add_layout(Span(location=epoch, **MARKER))
        return fig

    def redraw(self) -> None:
        """Re-read (a live run's series grew): copy the new data and ranges into the figure in
        place; when the glyphs differ (a measure appeared), swap in the new figure."""
        if self.figure is None:
            return
        marker = Span(location=self.marker.location, **MARKER)
        fresh = self._render(marker)
        old = [r for r in self.figure.renderers if isinstance(r, GlyphRenderer)]
        new = [r for r in fresh.renderers if isinstance(r, GlyphRenderer)]
        if [type(r.glyph) for r in old] != [type(r.glyph) for r in new]:
            self.figure, self.marker = fresh, marker
            if self._pane is not None:
                self._pane.object = fresh
            return
        self.figure.title.text = fresh.title.text  # a per-layer curve names its layer
        for o, n in zip(old, new):
            o.data_source.data = dict(n.data_source.data)
        for attr in ("x_range", "y_range"):
            o, n = getattr(self.figure, attr), getattr(fresh, attr)
            if hasattr(o, "start") and hasattr(n, "start"):
                o.update(start=n.start, end=n.end)

    def pane(self) -> pn.pane.Bokeh:
        if self._pane is None:
            self._pane = pn.pane.Bokeh(self.figure, name=self.name)
        return self._pane
