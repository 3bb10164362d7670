"""Views of the weights and attention: at the current epoch, the mean attention from '=' per
head and the accuracy per residue class (``EpochView``s refilled in place); over training, the
effective dimensionality and the sum of squared weights per matrix (HoloViews elements). The
W_L Fourier spectrum per neuron is ``viz.neurons.NeuronFrequencies`` on ``wl_freq_norm``."""

from __future__ import annotations

import holoviews as hv
import numpy as np
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.plotting import figure

from viz import data
from viz.linked import TOOLBAR, TOOLS, EpochView
from viz.plots import HEIGHT, WIDTH
from viz.progress import _curves

SPLIT_COLORS = {"train": "#1f77b4", "test": "#d62728"}
POSITION_COLORS = ["#4c72b0", "#dd8452", "#bbbbbb"]


class Attention(EpochView):
    """Mean attention from '=' to each position (a, b, '='), stacked per head; the hover names
    each head's strongest frequency (argmax of its attention-to-a map's Fourier fractions) and
    the fraction it holds (a dense spectrum's strongest holds little)."""

    name = "attention"
    needs = ("attention_mean", "head_freq_fraction", "position")

    def __init__(self, root: str, run_id: str):
        self.root, self.run_id = root, run_id
        self.positions = [str(p) for p in data.coord(root, run_id, "position")]
        n_heads = data.store(root, run_id).sizes()["head"]
        self.heads = [f"head {h}" for h in range(n_heads)]
        self.source = ColumnDataSource({"head": self.heads, "k": np.zeros(n_heads, int), "kf": np.zeros(n_heads),
                                        **{p: np.zeros(n_heads) for p in self.positions}})
        fig = figure(x_range=FactorRange(*self.heads), y_range=Range1d(0, 1.02), width=WIDTH, height=HEIGHT,
                     tools=TOOLS, toolbar_location=TOOLBAR, title="Attention from '=' per head")
        bars = fig.vbar_stack(self.positions, x="head", width=0.7, source=self.source, color=POSITION_COLORS,
                              legend_label=[f"to {p}" for p in self.positions])
        fig.add_tools(HoverTool(renderers=bars, tooltips=[("head", "@head"), ("strongest frequency k", "@k (@kf{0.00} of variance)"),
                                                          *[(f"to {p}", f"@{{{p}}}{{0.000}}") for p in self.positions]]))
        legend = fig.legend[0]
        fig.center.remove(legend)
        fig.add_layout(legend, "right")
        fig.yaxis.axis_label = "mean attention"
        self.figure = fig

    def clone(self) -> "Attention":
        return Attention(self.root, self.run_id)

    def load(self, epoch: int):
        layer = self.layer or 0
        return (data.layer_slice(self.root, self.run_id, "attention_mean", epoch, layer),  # (head, position)
                data.layer_slice(self.root, self.run_id, "head_freq_fraction", epoch, layer))  # (head, freq)

    def draw(self, loaded) -> None:
        mean, fractions = loaded
        freqs = data.coord(self.root, self.run_id, "freq")
        self.source.data.update(k=freqs[fractions.argmax(axis=1)], kf=np.asarray(fractions.max(axis=1), dtype=float),
                                **{p: np.asarray(mean[:, j], dtype=float) for j, p in enumerate(self.positions)})


class ClassAccuracy(EpochView):
    """Accuracy per answer class c at the current epoch, train and test."""

    name = "class_accuracy"
    needs = ("class_accuracy", "c", "split")

    def __init__(self, root: str, run_id: str):
        self.root, self.run_id = root, run_id
        self.splits = [str(s) for s in data.coord(root, run_id, "split")]
        c = data.coord(root, run_id, "c")
        self.source = ColumnDataSource({"c": c, **{s: np.zeros(len(c)) for s in SPLIT_COLORS}})
        fig = figure(width=WIDTH, height=HEIGHT, tools=TOOLS, toolbar_location=TOOLBAR, y_range=Range1d(0, 1.02),
                     title="Accuracy per residue class")
        for split, color in SPLIT_COLORS.items():
            fig.line("c", split, source=self.source, color=color, line_width=1.8, legend_label=split)
        fig.add_tools(HoverTool(tooltips=[("c", "@c"), *[(s, f"@{s}{{0.000}}") for s in SPLIT_COLORS]]))
        legend = fig.legend[0]
        fig.center.remove(legend)
        fig.add_layout(legend, "above")
        legend.update(orientation="horizontal", padding=2, margin=0)
        fig.xaxis.axis_label, fig.yaxis.axis_label = "answer c", "accuracy"
        self.figure = fig

    def clone(self) -> "ClassAccuracy":
        return ClassAccuracy(self.root, self.run_id)

    def load(self, epoch: int) -> np.ndarray:
        return data.epoch_slice(self.root, self.run_id, "class_accuracy", epoch)  # (split, c)

    def draw(self, acc: np.ndarray) -> None:
        self.source.data.update(**{s: np.asarray(acc[self.splits.index(s)], dtype=float) for s in SPLIT_COLORS})


def absent(title: str) -> str:
    return f"**{title}**: not analysed in this run (`tdw analyze` adds it)."


def participation(root: str, run_id: str, layer: int | None = None) -> hv.Overlay:
    """Per matrix: W_E's, and those of ``layer`` (see ``progress._curves``); a store written
    before layers holds W_E, W_in and W_out together (``matrix``)."""
    if data.has(root, run_id, "layer_matrix"):
        embed = [("participation_ratio_embed", "W_E", None)] if data.has(root, run_id, "participation_ratio_embed") else []
        series = embed + [("participation_ratio", str(n), i) for i, n in enumerate(data.coord(root, run_id, "layer_matrix"))]
    else:
        names = data.coord(root, run_id, "matrix") if data.has(root, run_id, "matrix") else ["W_E", "W_in", "W_out"]
        series = [("participation_ratio", str(n), i) for i, n in enumerate(names)]
    return _curves(root, run_id, series, "participation ratio", "Effective dimensionality (participation ratio)",
                   layer=layer, legend="right", width=WIDTH + 60)


def weight_norms(root: str, run_id: str) -> hv.Overlay:
    """Per matrix (each summed over the layers)."""
    names = data.coord(root, run_id, "param") if data.has(root, run_id, "param") else ["W_E"]
    return _curves(root, run_id, [("sum_sq_weights", str(n), i) for i, n in enumerate(names)],
                   "sum of squares", "Sum of squared weights per matrix (log)", logy=True,
                   legend="right", width=WIDTH + 90)
