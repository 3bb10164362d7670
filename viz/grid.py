"""Tasks × training fractions: the epoch at which each run first generalises (test accuracy ≥
0.95), one cell per (task, fraction), the workbench's version of Power et al. 2022's
data-fraction figure. Read from the stored series and the store's root attributes (the task)
and config (``frac_train``); nothing is recomputed. Runs are pooled only with runs of the same
setting: where the runs shown differ in anything that changes the dynamics besides the task, the
fraction and the seeds (``SETTING``: the modulus, learning rate, weight decay, depth, MLP width,
initialisation), each setting gets its own row."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, FactorRange, HoverTool, LogColorMapper
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from tasks.config import RunConfig
from tasks.problems import PROBLEMS
from viz import data

THRESHOLD = 0.95  # test accuracy that counts as generalised
NOT_GENERALISED = "#d9d9d9"  # a cell no run of which generalised: grey, hatched, with the text
# what separates rows of one task: (label, path in the run's config)
SETTING = (("p", ("p",)), ("lr", ("lr",)), ("wd", ("weight_decay",)), ("layers", ("model", "n_layers")),
           ("d_mlp", ("model", "d_mlp")), ("init", ("model", "init")))


@dataclass(frozen=True)
class Outcome:
    """One run's result: the first epoch with test accuracy ≥ ``THRESHOLD`` (None: not reached)
    after ``trained`` epochs of ``planned``."""

    run_id: str
    task: str
    formula: str
    frac: float
    epoch: int | None
    trained: int
    planned: int
    setting: tuple = ()  # the run's value of each SETTING (None: not in its config)


def _setting(cfg: dict) -> tuple:
    """The run's value of each ``SETTING``, read as the run config reads its stored dict (so a
    run made before a field existed has that field's value for such runs, e.g. ``init native``)."""
    try:
        run = RunConfig.from_dict(cfg)
    except (ValueError, TypeError, KeyError):  # a config this version cannot read: its raw fields
        run = None
    values = []
    for _, path in SETTING:
        value = run if run is not None else cfg
        for key in path:
            value = getattr(value, key, None) if run is not None else (value or {}).get(key)
        values.append(value)
    return tuple(values)


def outcome(root: str, run_id: str, threshold: float = THRESHOLD) -> Outcome:
    test = data.series(root, run_id)["test_acc"]  # (series_epoch,), NaN where not evaluated
    hits = np.flatnonzero(np.nan_to_num(test, nan=-1.0) >= threshold)
    cfg, task = data.config(root, run_id), data.task(root, run_id)
    return Outcome(run_id, task.name, task.formula, float(cfg["frac_train"]), int(hits[0]) if len(hits) else None,
                   data.trained_through(root, run_id) + 1, int(cfg["num_epochs"]), _setting(cfg))


def outcomes(root: str, runs: list[str]) -> list[Outcome]:
    """Each readable run's outcome (a run being created or damaged is left out)."""
    found = []
    for run_id in runs:
        try:
            found.append(outcome(root, run_id))
        except (*data.READ_ERRORS, TypeError):  # TypeError: a config without frac_train's number
            continue
    return found


@dataclass(frozen=True)
class Cell:
    """The runs of one (task, setting, fraction): the median epoch of those that generalised, how
    many did. ``setting``: what sets this row apart from other rows of the task ("" if nothing)."""

    task: str
    frac: float
    runs: tuple[Outcome, ...]
    setting: str = ""

    @property
    def row(self) -> str:
        return f"{self.task} · {self.setting}" if self.setting else self.task

    @property
    def generalised(self) -> list[int]:
        return sorted(o.epoch for o in self.runs if o.epoch is not None)

    @property
    def epoch(self) -> float | None:
        return float(np.median(self.generalised)) if self.generalised else None

    @property
    def text(self) -> str:
        n, done = len(self.runs), self.generalised
        if not done:
            trained = min(o.trained for o in self.runs)
            still = any(o.trained < o.planned for o in self.runs)
            return f"not yet\n(epoch {trained})" if still else f"did not generalise\nin {trained:,} epochs"
        epoch = f"{self.epoch:,.0f}"
        return epoch if len(done) == n else f"{epoch}\n({len(done)} of {n} runs)"


def cells(found: list[Outcome]) -> tuple[list[str], list[float], list[Cell]]:
    """``(rows, fractions, cells)``: the rows (a task, or a task and a setting where the runs'
    settings differ: ``"add · p 59, lr 0.003"``), tasks in the registry's order (an unknown one
    after them by name), then settings; the fractions (ascending); a cell for each (row,
    fraction) with runs."""
    order = list(PROBLEMS)
    varies = [i for i in range(len(SETTING)) if len({o.setting[i:i + 1] for o in found}) > 1]

    def setting(o: Outcome) -> str:
        return ", ".join(f"{SETTING[i][0]} {o.setting[i]:g}" if isinstance(o.setting[i], float)
                         else f"{SETTING[i][0]} {o.setting[i]}" for i in varies)

    grouped: dict[tuple, list[Outcome]] = {}
    for o in found:
        rank = order.index(o.task) if o.task in order else len(order)
        grouped.setdefault((rank, o.task, tuple(_order(o.setting[i]) for i in varies), o.frac), []).append(o)
    grid = [Cell(task, frac, tuple(runs), setting(runs[0])) for (_, task, _, frac), runs in sorted(grouped.items())]
    rows = list(dict.fromkeys(c.row for c in grid))
    return rows, sorted({o.frac for o in found}), grid


def _order(value) -> tuple:
    """A sort key for a setting's value: numbers by value, before anything else by its text."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, float(value), "") if number else (1, 0.0, str(value))


def plot(found: list[Outcome], width: int = 900):
    """The grid of these runs' outcomes as a Bokeh figure: rows are tasks (named with their
    formula), columns training fractions; a cell is coloured by its epoch on a log scale and
    says it, or is grey and hatched with "did not generalise in N epochs"; hover names the runs."""
    rows, fracs, grid = cells(found)
    formula = {o.task: o.formula for o in found}
    label = {c.row: f"{c.task}: {formula[c.task]}" + (f" · {c.setting}" if c.setting else "") for c in grid}
    rows = [label[r] for r in rows]
    cols = [f"{f:g}" for f in fracs]
    epochs = [max(c.epoch, 1) for c in grid if c.epoch is not None]
    low, high = (min(epochs), max(epochs)) if epochs else (1, 10)
    mapper = LogColorMapper(palette=Viridis256, low=low, high=high if high > low else 10 * low,
                            nan_color=NOT_GENERALISED)
    source = ColumnDataSource({
        "row": [label[c.row] for c in grid], "col": [f"{c.frac:g}" for c in grid],
        "value": [max(c.epoch, 1) if c.epoch is not None else math.nan for c in grid],
        "hatch": ["/" if c.epoch is None else " " for c in grid],
        "text": [c.text for c in grid],
        "ink": ["black" if c.epoch is None or _light(c.epoch, low, high) else "white" for c in grid],
        "runs": [", ".join(o.run_id for o in c.runs) for c in grid],
    })
    fig = figure(x_range=FactorRange(*cols), y_range=FactorRange(*reversed(rows)), width=width,
                 height=110 + 70 * max(len(rows), 1), tools="hover,save", toolbar_location="right",
                 title=f"Epoch to generalise (test accuracy ≥ {THRESHOLD}) per task × training fraction")
    fig.rect(x="col", y="row", width=0.96, height=0.92, source=source, line_color="white",
             fill_color={"field": "value", "transform": mapper}, hatch_pattern="hatch", hatch_color="#8c8c8c",
             hatch_alpha=0.5)
    fig.add_layout(ColorBar(color_mapper=mapper, width=12, title="epoch", padding=4), "right")
    fig.text(x="col", y="row", text="text", source=source, text_align="center", text_baseline="middle",
             text_color="ink", text_font_size="12px")
    fig.select_one(HoverTool).tooltips = [("task", "@row"), ("training fraction", "@col"), ("runs", "@runs")]
    fig.xaxis.axis_label, fig.yaxis.axis_label = "training fraction", "task"
    fig.grid.visible = False
    fig.axis.major_tick_line_color = None
    fig.name = "task_grid"
    return fig


def _light(epoch: float, low: float, high: float) -> bool:
    """Whether the cell's colour is light (Viridis's upper part, yellow-green, on the log scale
    from ``low`` to ``high``): black text on it."""
    return math.log(max(epoch, 1) / low) / max(math.log(high / low), 1e-9) > 0.6


def markdown(found: list[Outcome]) -> str:
    """The grid of these runs' outcomes as a markdown table (for the docs)."""
    rows, fracs, grid = cells(found)
    at = {(c.row, c.frac): c.text.replace("\n", " ") for c in grid}
    lines = ["| task | " + " | ".join(f"{f:g}" for f in fracs) + " |", "|---|" + "---|" * len(fracs)]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(at.get((r, f), "") for f in fracs) + " |")
    return "\n".join(lines)
