"""Run comparison: several runs (a sweep, say) overlaid, one curve per run, for the training
series or any scalar measure the analyses stored (a variable of dims ``(epoch,)``, or one label
of a small labelled dimension such as ``restricted_loss`` on the test split); or, as a grid of
tasks × training fractions, the epoch at which each generalised (``viz.grid``).

Runs of different depths compare on any scalar measure. A per-layer measure (a ``layer``
dimension after ``epoch``) is offered at each layer of the deepest run picked, where a
shallower run has no curve (named in the title), and at each run's last layer (``LAST``): the
layer whose output the unembedding reads, so a 1-, 2- and 3-layer run line up on what each
finally computes."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn

from viz import curves, data, generic, grid

SERIES = {"train loss": "train_loss", "test loss": "test_loss", "train accuracy": "train_acc",
          "test accuracy": "test_acc"}
MAX_DEFAULT = 8
MODES = ("curves", "task × fraction grid")
LAST = -1  # a per-layer measure at each run's own last layer


def measures(root: str, runs: list[str]) -> dict[str, tuple[str, str | None, int | None]]:
    """Label -> (variable, label along its labelled dimension or None, layer or None (``LAST``:
    each run's last)), over the given runs. A variable per layer in any of them is offered per
    layer only (a store written before the ``layer`` dimension holds it as layer 0)."""
    out = {label: (name, None, None) for label, name in SERIES.items()}
    per_layer = set()
    for run_id in runs:
        try:
            variables = data.per_epoch_variables(root, run_id)
        except (data.StoreError, KeyError, OSError):  # a run being created, or a damaged store
            continue
        for name, attrs in variables.items():
            if generic.kind(root, run_id, name) != "curves":
                continue
            layered = data.layered(root, run_id, name)
            per_layer |= {name} if layered else set()
            dims = tuple(attrs["dims"][2 if layered else 1:])
            items = generic.labels(root, run_id, dims[0]) if dims else [None]
            layers = [(None, "")] if not layered else \
                [(LAST, " · last layer")] + [(l, f" · layer {l}") for l in range(data.n_layers(root, run_id))]
            for item in items:
                for layer, where in layers:
                    out.setdefault(name + (f" [{item}]" if item is not None else "") + where, (name, item, layer))
    return {label: m for label, m in out.items() if m[0] not in per_layer or m[2] is not None}


def values(root: str, run_id: str, name: str, index: int | str | None, layer: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of one measure of one run (measured epochs only; empty if absent,
    unreadable, or the run has no such layer or label). ``index``: along the labelled dimension,
    a position or a label (found among this run's). A store without a ``layer`` dimension holds
    its one layer, layer 0."""
    try:
        return _values(root, run_id, name, index, layer)
    except (data.StoreError, KeyError, OSError):
        return np.array([], dtype=int), np.array([])


def _values(root: str, run_id: str, name: str, index: int | str | None, layer: int | None
            ) -> tuple[np.ndarray, np.ndarray]:
    if name in SERIES.values():
        y = data.series(root, run_id)[name]
        x = np.arange(len(y))
    else:
        x, y = data.measure(root, run_id, name)
        if layer is not None and len(y):
            layered = data.layered(root, run_id, name)
            n = y.shape[1] if layered else 1
            at = n - 1 if layer == LAST else layer
            if at >= n:
                return np.array([], dtype=int), np.array([])
            y = y[:, at] if layered else y
        if isinstance(index, str):
            labels = generic.labels(root, run_id, data.describe(root, run_id, name)["dims"][-1])
            if index not in labels:
                return np.array([], dtype=int), np.array([])
            index = labels.index(index)
        if index is not None and len(y):
            y = y[:, index]
    keep = np.isfinite(y)
    return x[keep], y[keep]


def overlay(root: str, runs: list[str], label: str, name: str, index: int | str | None, logy: bool,
            layer: int | None = None) -> hv.Overlay:
    """One curve per run, named as the run picker names it (with its task where tasks differ)."""
    curves, missing = [], []
    names = data.labelled_runs(root, runs)
    names = {r: label_ for label_, r in names.items()} if isinstance(names, dict) else {r: r for r in runs}
    for i, run_id in enumerate(runs):
        x, y = values(root, run_id, name, index, layer)
        if not len(x):
            missing.append(run_id)
            continue
        y = np.maximum(y, 1e-12) if logy else y
        curves.append(hv.Curve((x, y), "epoch", label, label=names[run_id]).opts(color=generic.COLORS[i % len(generic.COLORS)]))
    title = label + (f" (not stored in {len(missing)} run(s))" if missing else "")
    return hv.Overlay(curves or [hv.Curve([], "epoch", label)]).opts(
        hv.opts.Curve(width=900, height=420, tools=["hover"], line_width=1.6, logy=logy),
        hv.opts.Overlay(title=title, legend_position="right", logy=logy),
    )


class Compare:
    """The comparison page: a run picker (several), then either a measure, log scale and one
    overlay, or the grid of tasks × training fractions over the picked runs or every run."""

    def __init__(self, root: str, current: str | None):
        self.root = root
        runs = data.runs(root)
        p = data.config(root, current)["p"] if current in runs else None
        same = [r for r in runs if p is None or _p(root, r) == p]
        default = ([current] if current in runs else []) + [r for r in same if r != current]
        self.runs = pn.widgets.MultiChoice(label="Runs", options=data.labelled_runs(root, runs),
                                           value=default[:MAX_DEFAULT], width=900)
        self.mode = pn.widgets.RadioButtonGroup(options=list(MODES), value=MODES[0], width=300, margin=(27, 10))
        self.measure = pn.widgets.Select(label="Measure", width=300)
        self.logy = pn.widgets.Checkbox(label="log scale", value=True, margin=(30, 10))
        self.every = pn.widgets.Checkbox(label="every run in the root", value=True, margin=(30, 10), visible=False)
        self.plot = pn.pane.Bokeh()
        self.runs.param.watch(lambda _: self._options(), "value")
        for w in (self.measure, self.logy, self.mode, self.every):
            w.param.watch(lambda _: self.draw(), "value")
        self._options()
        self.panel = pn.Column(self.runs, pn.Row(self.mode, self.measure, self.logy, self.every), self.plot,
                               name="Compare runs")

    def _options(self) -> None:
        self.choices = measures(self.root, self.runs.value)
        keep = self.measure.value
        self.measure.options = list(self.choices)
        self.measure.value = keep if keep in self.choices else "test loss"
        self.draw()

    def draw(self) -> None:
        curves_shown = self.mode.value == MODES[0]
        self.measure.visible = self.logy.visible = curves_shown
        self.every.visible = not curves_shown
        if not curves_shown:
            self.found = grid.outcomes(self.root, data.runs(self.root) if self.every.value else self.runs.value)
            self.plot.object = grid.plot(self.found)
            return
        name, index, layer = self.choices[self.measure.value]
        self.element = overlay(self.root, self.runs.value, self.measure.value, name, index, self.logy.value, layer)
        fig = curves.render(self.element)
        fig.name = "compare"
        self.plot.object = fig

    def refresh(self) -> None:
        options = data.labelled_runs(self.root, data.runs(self.root))
        if options != self.runs.options:
            self.runs.options = options
        if self.mode.value == MODES[1]:  # a sweep's runs join the grid and move on: redrawn when it changes
            runs = data.runs(self.root) if self.every.value else self.runs.value
            if grid.outcomes(self.root, runs) != self.found:
                self.draw()


def _p(root: str, run_id: str) -> int | None:
    try:
        return data.config(root, run_id)["p"]
    except (data.StoreError, KeyError, OSError):
        return None
