"""One run's views, all driven by one epoch slider (and by the player, the keyboard and clicks
on the curves). The views are the rows of the table in ``viz.views`` that the run's store can
feed, each built when its tab is first opened. A step refreshes only the views of the visible
tab, each in place (see ``viz.linked``), in one batch of document changes, then reads the
neighbouring epochs in the background so that the next step finds them cached. A run still
training or being analysed gains epochs as they are done without moving the current one."""

from __future__ import annotations

from typing import Callable

import numpy as np
import panel as pn

from viz import data, neurons, progress, structure
from viz.explore import Explore
from viz.generic import COLOUR_MODES
from viz.keys import Keys
from viz.layers import LayerPicker
from viz.linked import CurveView, EpochSlider, EpochView, after_load
from viz.views import BY_NAME, EVERY, PROGRESS, TABS, VIEWS, View
from viz.zoom import ZoomForm

SPEEDS = {"½×": 800, "1×": 400, "2×": 200, "4×": 100}  # ms per checkpoint while playing
GRID_SIZES = (4, 9, 16, 25, 36)
PREFETCH = 64  # epochs read ahead around the current one, nearest first
TOP = "top"


def message(text: str) -> pn.pane.Alert:
    return pn.pane.Alert(text, alert_type="info", width=600)


class RunView:
    """Every view of one run. ``on_state(epoch=..., neuron=...)`` hears the shareable state."""

    def __init__(self, root: str, run_id: str, epoch: int | None = None, neuron: int | None = None,
                 single: str | None = None, on_state: Callable[..., None] = lambda **_: None,
                 on_fault: Callable[[Exception], None] | None = None, layer: int | None = None):
        self.root, self.run_id, self.single, self.on_state = root, run_id, single, on_state
        self.on_fault = on_fault
        self.epochs = data.analysed_epochs(root, run_id)
        self.trained_through = data.trained_through(root, run_id)
        cfg = data.config(root, run_id)
        options = self.epochs or [0]
        start = epoch if epoch in self.epochs else options[-1]
        self.epoch = EpochSlider(label="Epoch", options=options, value=start, width=300)
        self.player = pn.widgets.DiscretePlayer(options=options, value=start, interval=SPEEDS["1×"], width=300,
                                                loop_policy="once", show_loop_controls=False, show_value=False,
                                                height=50, scale_buttons=0.8, visible_buttons=[
                                                    "first", "previous", "reverse", "pause", "play", "next", "last"],
                                                stylesheets=["input[type=range] { display: none; }"])  # one slider: the epoch
        self.speed = pn.widgets.RadioButtonGroup(options=SPEEDS, value=SPEEDS["1×"], width=300)
        self.layers = LayerPicker(root, run_id, layer)  # shown for a run of more than one layer
        d_mlp = cfg["model"]["d_mlp"]
        self.neuron = pn.widgets.IntInput(label="Neuron", start=0, end=d_mlp - 1, value=0, width=110)
        self.prev_neuron = pn.widgets.Button(label="◀", width=45, margin=(24, 2, 5, 5), description="previous neuron ([)")
        self.next_neuron = pn.widgets.Button(label="▶", width=45, margin=(24, 2, 5, 2), description="next neuron (])")
        self.colour = pn.widgets.Select(label="Colour range", options=list(COLOUR_MODES), width=300)
        self.grid_choice = pn.widgets.Select(label="Neuron grid", options={"top by activation variance": TOP}, width=200)
        self.grid_size = pn.widgets.Select(label="How many", options=list(GRID_SIZES), value=16, width=90)
        self.order_by = pn.widgets.Select(label="Neuron × frequency order", options=list(neurons.ORDERS), width=300)
        self.threshold = pn.widgets.FloatSlider(label="Specialised neuron threshold", start=0.1, end=0.99,
                                                step=0.01, value=0.85, width=300)
        self.info = pn.pane.Markdown(self._info(cfg), width=300)
        self.zoom = ZoomForm(root, run_id, max(self.trained_through, 0), self._loss_range)
        self.keys = Keys(self._guard(self.key))
        self.views: dict[str, EpochView | CurveView] = {}
        self.stale: set[str] = set()  # curves to redraw when next shown (the run grew meanwhile)
        self.rows: dict[str, View] = {}  # the table's views this run can draw (``_build``)
        if not self.epochs:
            self.panel = message(f"Run `{run_id}` has no analysed checkpoints yet; they appear here as they are done.")
            return
        self._build(neuron)
        self.panel = self._layout()

    def _info(self, cfg: dict) -> str:
        task = data.task(self.root, self.run_id)
        layers = cfg["model"].get("n_layers", 1)
        depth = f" · **layers** {layers}" if layers > 1 else ""
        return (f"**task** {task.name}, {task.formula}  \n**basis** {task.basis}  \n**p** {cfg['p']} · **frac** {cfg['frac_train']} · **lr** {cfg['lr']} · "
                f"**wd** {cfg['weight_decay']}{depth}  \n**seeds** model {cfg['seed']}, data {cfg['data_seed']} · "
                f"**epochs** {self.trained_through + 1}/{cfg['num_epochs']} · "
                f"**analysed** {len(self.epochs)}/{len(cfg['checkpoint_epochs'])}")

    # --- building ---
    def _build(self, neuron: int | None) -> None:
        root, run_id, last = self.root, self.run_id, self.epochs[-1]
        self.rows = {v.name: v for v in VIEWS if data.has(root, run_id, *v.needs)}
        if len(self.rows) < len(VIEWS):  # a view hidden: the run lacks an analysis, unless its store is damaged
            data.check_recorded(root, run_id)
        self.fourier = data.has(root, run_id, "neuron_freq_fraction", "freq")  # neuron orders and clusters
        self.order_caption = f"neuron ({neurons.ORDERS[0]})"
        self.order = neurons.order(root, run_id, last, neurons.ORDERS[0], self.layers.value) if self.fourier \
            else np.arange(self.neuron.end + 1)
        if neuron is None or not 0 <= neuron <= self.neuron.end:
            neuron = data.top_by_variance(root, run_id, last, 1, self.layers.value)[0] \
                if data.has(root, run_id, "neuron_activations") else 0
        self.neuron.value = neuron
        self._show_controls()
        self.explore: Explore | None = None  # the "Every analysis" tab, built when first opened
        self._grid_options()
        for name in ([self.single] if self.single else [v.name for v in VIEWS if v.tab == TABS[0]]):
            self.view(name)
        for name in self._visible():
            self.views[name].show(self.epoch.value)
        self._watch()
        after_load(lambda: self._prefetch(self.epoch.value))

    def view(self, name: str) -> EpochView | CurveView | None:
        """The view ``name`` of the table (``viz.views``), built on first use; None when the run
        lacks what it needs (or no view has that name)."""
        if name not in self.views and name in self.rows:
            made = self.views[name] = self.rows[name].draw(self, name)
            if isinstance(made, EpochView):
                made.figure.name = name  # CurveViews name their figures when drawn
                if self.layers.per_layer(self.rows[name]):
                    made.set_layer(self.layers.value)
        return self.views.get(name)

    def layer_kw(self, name: str) -> dict:
        """``{"layer": l}`` for the plot function of view ``name`` where it shows the picked layer."""
        return self.layers.kw(self.rows[name]) if name in self.rows else {}

    def exportable(self) -> list[str]:
        """The views this run can draw, in table order (each is built when exported)."""
        return list(self.rows)

    def _guard(self, fn: Callable) -> Callable:
        """``fn`` as a widget callback: when the store can no longer be read (the run deleted, a
        chunk damaged) the error goes to ``on_fault`` (the app shows a message in place), not
        into the server's callback as a traceback. Without ``on_fault`` it is raised."""
        def call(*args):
            try:
                fn(*args)
            except data.READ_ERRORS as exc:
                if self.on_fault is None:
                    raise
                self.on_fault(exc)
        return call

    def _watch(self) -> None:
        g = self._guard
        self.epoch.param.watch(g(lambda e: self.step(e.new)), "value")
        self.player.param.watch(lambda e: setattr(self.epoch, "value", e.new), "value")
        self.speed.param.watch(lambda e: setattr(self.player, "interval", e.new), "value")
        self.neuron.param.watch(g(lambda e: self._show_neuron(e.new)), "value")
        self.prev_neuron.on_click(g(lambda _: self.walk_neuron(-1)))
        self.next_neuron.on_click(g(lambda _: self.walk_neuron(+1)))
        self.colour.param.watch(g(self._set_colour), "value")
        self.grid_choice.param.watch(g(lambda _: self._set_grid()), "value")
        self.grid_size.param.watch(g(lambda _: self._set_grid()), "value")
        self.order_by.param.watch(g(lambda _: self._set_order()), "value")
        self.threshold.param.watch(g(self._set_threshold), "value")
        self.layers.widget.param.watch(g(lambda _: self.layers.drive(self)), "value")

    def _layout(self) -> pn.viewable.Viewable:
        if self.single:
            view = self.views.get(self.single) or self._explore().make(self.single)
            if view is None and self.single in BY_NAME:
                return message(structure.absent(BY_NAME[self.single].title))
            if view is None:
                return message(f"No view named `{self.single}` in run `{self.run_id}`.")
            self.views[self.single] = view
            view.show(self.epoch.value)
            return view.pane()
        self.key_text = pn.pane.Markdown(self._key_text(), width=860) if self.fourier else None
        # only the visible tab is rendered, and only its views are updated; the other tabs'
        # views are built and laid out when first opened (a page load builds one tab's)
        self.tabs = pn.Tabs(*(pn.Column(name=name) for name in TABS), dynamic=True)
        self._fill_tab(0)
        self.tabs.param.watch(self._guard(lambda _: self._show_tab()), "active")
        return self.tabs

    def _fill_tab(self, i: int) -> None:
        """Build and lay out tab ``i``'s views when first shown: the views the run can draw, in
        table order, wrapping to the page's width, then a note for each one it cannot
        (``_show_tab`` lays out "Every analysis")."""
        tab = TABS[i]
        if self.tabs[i].objects or tab == EVERY:
            return
        rows = [v for v in VIEWS if v.tab == tab]
        panes = [self.view(v.name).pane() for v in rows if v.name in self.rows]
        notes = [pn.pane.Markdown(structure.absent(v.title), margin=(0, 10)) for v in rows if v.name not in self.rows]
        header = [self.key_text] if tab == PROGRESS and self.key_text is not None else []
        self.tabs[i].objects = [*header, pn.FlexBox(*panes, flex_wrap="wrap"), *notes]

    def _explore(self) -> Explore:
        if self.explore is None:
            self.explore = Explore(self.root, self.run_id, self.epochs, self.jump, lambda: self.epoch.value,
                                   self.layers)
        return self.explore

    def controls(self) -> list:
        return [self.epoch, self.player, self.speed, self.layers.widget, pn.Row(self.neuron, self.prev_neuron, self.next_neuron),
                self.colour, pn.Row(self.grid_choice, self.grid_size), self.order_by, self.threshold,
                self.info, pn.pane.Markdown("**Zoom in: add checkpoints**", margin=(10, 5, 0, 5)),
                self.zoom.panel, self.keys]

    def _loss_range(self) -> tuple[float, float] | None:
        """The epochs the loss plot shows (after a box zoom, the zoomed range); None before it
        is drawn."""
        figure = getattr(self.views.get("loss"), "figure", None)
        shown = figure and (figure.x_range.start, figure.x_range.end)
        return shown if shown and None not in shown else None

    def _show_controls(self) -> None:
        """Only the controls of views the run can draw."""
        rows = set(self.rows)
        neurons_shown = bool(rows & {"neuron_heatmap", "neuron_grid", "neuron_frequencies", "wl_spectrum"})
        for widget in (self.neuron, self.prev_neuron, self.next_neuron):
            widget.visible = neurons_shown
        self.colour.visible = bool(rows & {"neuron_heatmap", "neuron_grid"})
        self.grid_choice.visible = self.grid_size.visible = "neuron_grid" in rows
        self.order_by.visible = self.threshold.visible = self.fourier

    # --- what a step touches ---
    def _tab(self) -> str:
        tabs = getattr(self, "tabs", None)
        return TABS[tabs.active] if tabs is not None else TABS[0]

    def _visible(self) -> list[str]:
        if self.single:
            return [self.single] if self.single in self.views else []
        tab = self._tab()
        if tab == EVERY:
            return ["explore"] if self.explore is not None and self.explore.view is not None else []
        return [v.name for v in VIEWS if v.tab == tab and v.name in self.views]

    def _view(self, name: str):
        return self.explore.view if name == "explore" else self.views[name]

    def _show_key_text(self) -> None:
        if self._tab() == PROGRESS and not self.single and self.key_text is not None:
            self.key_text.object = self._key_text()

    def step(self, epoch: int) -> None:
        """Show ``epoch`` in every visible view, in one batch of changes, then prefetch."""
        with pn.io.hold():
            if self.order_by.value == neurons.ORDERS[1]:
                self._set_order(show=False)
            for name in self._visible():
                self._view(name).show(epoch)
            if self.player.value != epoch:
                self.player.value = epoch
            self._show_key_text()
            self.on_state(epoch=epoch)
        self._prefetch(epoch)

    def _prefetch(self, epoch: int) -> None:
        """Read the ``PREFETCH`` analysed epochs nearest to ``epoch`` (every one on a shorter run)
        of the visible views in the background, nearest first: the next steps of a scrub, a click
        or the player find them cached. Bounded, so that a long run's session does not keep the
        server reading for seconds (each step moves the window along)."""
        nearest = sorted(self.epochs, key=lambda e: abs(e - epoch))[1:PREFETCH + 1]
        for name in self._visible():
            view = self._view(name)
            if isinstance(view, EpochView):
                view.prefetch(nearest)

    def _show_tab(self) -> None:
        self._fill_tab(self.tabs.active)
        if self._tab() == EVERY:
            if self.explore is None:
                self.tabs[self.tabs.active].objects = [self._explore().panel]
            self.explore.ensure()
        with pn.io.hold():
            for name in self._visible():
                view = self._view(name)
                if name in self.stale and isinstance(view, CurveView):
                    view.redraw()
                    self.stale.discard(name)
                view.show(self.epoch.value)
            self._show_key_text()
        self._prefetch(self.epoch.value)

    def jump(self, x: float) -> None:
        """Go to the analysed checkpoint nearest to epoch ``x`` (a click on a curve)."""
        if x is not None and self.epochs:
            self.epoch.value = min(self.epochs, key=lambda e: abs(e - x))

    def key(self, action: str) -> None:
        """A key press (``viz.keys``): step, jump to an end, play/pause, walk the neurons."""
        i = self.epochs.index(self.epoch.value)
        moves = {"prev": i - 1, "next": i + 1, "first": 0, "last": len(self.epochs) - 1}
        if action in moves:
            self.epoch.value = self.epochs[min(max(moves[action], 0), len(self.epochs) - 1)]
        elif action == "play":
            self.player.direction = 0 if self.player.direction else 1
        elif action in ("prev_neuron", "next_neuron"):
            self.walk_neuron(-1 if action == "prev_neuron" else 1)

    # --- neuron choices ---
    def pick(self, neuron: int) -> None:
        self.neuron.value = int(neuron)

    def walk_neuron(self, delta: int) -> None:
        """Previous / next neuron in the neuron × frequency view's order (walks a cluster)."""
        order = list(self.order)
        i = order.index(self.neuron.value) + delta
        self.neuron.value = int(order[min(max(i, 0), len(order) - 1)])

    def _built(self, *names: str) -> list:
        return [self.views[name] for name in names if name in self.views]

    def _show_neuron(self, neuron: int) -> None:
        with pn.io.hold():
            for view in self._built("neuron_heatmap"):
                view.set(self.epoch.value, index=neuron)
            for view in self._built("neuron_frequencies", "wl_spectrum"):
                view.mark(neuron)
            self.on_state(neuron=neuron)
        self._prefetch(self.epoch.value)

    def _set_colour(self, event) -> None:
        with pn.io.hold():
            for view in self._built("neuron_heatmap"):
                view.set(self.epoch.value, mode=event.new)
            for view in self._built("neuron_grid"):
                view.mode = event.new
                view.show(self.epoch.value)

    def _grid_options(self) -> None:
        found = neurons.clusters(self.root, self.run_id, self.epochs[-1], self.threshold.value, self.layers.value) \
            if self.fourier else {}
        options = {"top by activation variance": TOP}
        options.update({f"frequency k={k} ({len(ns)} neurons)": k for k, ns in found.items()})
        self.grid_choice.options = options
        if self.grid_choice.value not in options.values():
            self.grid_choice.value = TOP

    def grid_neurons(self) -> tuple[tuple[int, ...], str]:
        """The neuron grid's neurons (the top ones by variance, or a frequency cluster) and caption."""
        choice, size, last = self.grid_choice.value, self.grid_size.value, self.epochs[-1]
        if choice == TOP:
            chosen = data.top_by_variance(self.root, self.run_id, last, size, self.layers.value)
            caption = f"Top {len(chosen)} neurons by activation variance (epoch {last})"
        else:
            chosen = tuple(neurons.clusters(self.root, self.run_id, last, self.threshold.value, self.layers.value)
                           .get(choice, []))[:size]
            caption = f"Cluster k={choice}: > {self.threshold.value:.2f} of variance at epoch {last}"
        return chosen or (self.neuron.value,), caption

    def _set_grid(self) -> None:
        for view in self._built("neuron_grid"):
            view.set_neurons(*self.grid_neurons(), self.epoch.value)
            self._prefetch(self.epoch.value)

    def _set_order(self, show: bool = True) -> None:
        if not self.fourier:
            return
        by = self.order_by.value
        at = self.epoch.value if by == neurons.ORDERS[1] else self.epochs[-1]
        self.order = neurons.order(self.root, self.run_id, at, by, self.layers.value)
        self.order_caption = f"neuron ({by})"
        for name in ("neuron_frequencies", "wl_spectrum"):
            if name in self.views:
                view = self.views[name]
                view.set_order(self.order, self.order_caption)
                view.mark(self.neuron.value)
                if show and name in self._visible():
                    view.show(self.epoch.value)

    def _set_threshold(self, _) -> None:
        self._grid_options()
        if "specialised_share" in self._visible():
            self.views["specialised_share"].redraw()
        else:
            self.stale.add("specialised_share")
        self._show_key_text()

    def _key_text(self) -> str:
        return progress.key_frequency_text(self.root, self.run_id, self.threshold.value, self.epoch.value,
                                           **self.layer_kw("neuron_frequencies"))

    # --- a live run ---
    def refresh(self) -> bool:
        """Pick up new analysed epochs and series; the current epoch stays. True when the run
        had no analysed epoch before and has now (the caller swaps in the built panel)."""
        data.regrown(self.root, self.run_id)
        epochs = data.analysed_epochs(self.root, self.run_id)
        trained = data.trained_through(self.root, self.run_id)
        if trained != self.trained_through:
            data.series(self.root, self.run_id, fresh=True)
        grew = epochs != self.epochs and bool(epochs)
        first = grew and not self.epochs
        if grew:
            current = self.epoch.value
            self.epochs = epochs
            for widget in (self.epoch, self.player):
                widget.options = epochs
            if first:
                self.epoch.value = self.player.value = epochs[-1]
                self._build(None)
                self.panel = self._layout()
            else:
                self.epoch.value = self.player.value = current
                for view in (*self.views.values(), self.explore and self.explore.view):
                    if hasattr(view, "epochs"):
                        view.epochs = epochs
        if not first and (grew or trained != self.trained_through):
            self.trained_through = trained
            visible = set(self._visible())
            for name, view in self.views.items():
                if isinstance(view, CurveView):
                    view.redraw() if name in visible else self.stale.add(name)
        self.trained_through = trained
        self.info.object = self._info(data.config(self.root, self.run_id))
        self.zoom.refresh()
        return first

