"""Views of the weights and attention per checkpoint: per-class accuracy, attention from '=',
the W_L Fourier spectrum per neuron, effective dimensionality. Pure functions of (run, epoch,
choices) -> HoloViews element, reading the store through ``viz.data``."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from viz import data
from viz.progress import _curves

WIDTH = 420


def _absent(title: str) -> str:
    return f"{title}: not analysed in this run (tdw analyze adds it)"


def class_accuracy(root: str, run_id: str, epoch: int) -> hv.Overlay:
    """Accuracy per answer class c at this checkpoint, train and test."""
    title = f"Accuracy per residue class · epoch {epoch}"
    if not data.has(root, run_id, "class_accuracy", "c"):
        return hv.Overlay([hv.Curve([], "answer c", "accuracy", label=s) for s in ("train", "test")]).opts(
            hv.opts.Curve(width=WIDTH, height=230, title=_absent(title)))
    acc = data.epoch_slice(root, run_id, "class_accuracy", epoch)  # (split, c)
    c = data.coord(root, run_id, "c")
    curves = [hv.Curve((c, acc[i]), "answer c", "accuracy", label=split).opts(color=color)
              for i, (split, color) in enumerate((("train", "#1f77b4"), ("test", "#d62728")))]
    return hv.Overlay(curves).opts(
        hv.opts.Curve(width=WIDTH, height=230, ylim=(0, 1.02), tools=["hover"], framewise=True,
                      title=title),
        hv.opts.Overlay(legend_position="bottom_right"),
    )


def attention(root: str, run_id: str, epoch: int) -> hv.Bars:
    """Mean attention from '=' to a, b and '=' per head; each head's dominant frequency (the
    argmax of its attention-to-a map's Fourier fractions) in the axis labels."""
    title = f"Attention from '=' · epoch {epoch}"
    if not data.has(root, run_id, "attention_mean", "head_freq_fraction", "position"):
        return hv.Bars([], ["head", "to"], "attention").opts(width=WIDTH, height=230, title=_absent(title))
    mean = data.epoch_slice(root, run_id, "attention_mean", epoch)  # (head, position)
    dominant = data.epoch_slice(root, run_id, "head_freq_fraction", epoch).argmax(axis=1) + 1
    positions = data.coord(root, run_id, "position")
    rows = [(f"head {h} (k={dominant[h]})", str(pos), float(mean[h, j]))
            for h in range(len(mean)) for j, pos in enumerate(positions)]
    return hv.Bars(rows, ["head", "to"], "attention").opts(
        width=WIDTH, height=230, stacked=True, tools=["hover"], ylim=(0, 1.02), framewise=True,
        cmap=["#4c72b0", "#dd8452", "#bbbbbb"], legend_position="right",
        title=title,
    )


def wl_spectrum(root: str, run_id: str, epoch: int, order: tuple[int, ...]) -> hv.Image:
    """Each neuron's W_L = W_out W_U row in the Fourier basis (per frequency); neurons in
    ``order`` (the neuron × frequency view's order), normalised per neuron."""
    title = f"W_L Fourier spectrum per neuron · epoch {epoch}"
    if not data.has(root, run_id, "wl_freq_norm"):
        zero = np.zeros((1, 1))
        return hv.Image(([1], [0], zero, zero), ["frequency k", "neuron (sorted by dominant k)"],
                        ["relative norm", "neuron"]).opts(width=WIDTH, height=320, title=_absent(title))
    norms = data.epoch_slice(root, run_id, "wl_freq_norm", epoch)[list(order)]
    norms = norms / np.maximum(norms.max(axis=1, keepdims=True), 1e-12)
    freqs = data.coord(root, run_id, "freq")
    ids = np.broadcast_to(np.asarray(order)[:, None], norms.shape)
    return hv.Image((freqs, np.arange(len(order)), norms, ids),
                    ["frequency k", "neuron (sorted by dominant k)"], ["relative norm", "neuron"]).opts(
        width=WIDTH, height=320, cmap="Purples", clim=(0, 1), colorbar=True, tools=["hover"],
        invert_yaxis=True, title=title,
    )


def participation(root: str, run_id: str) -> hv.Overlay:
    names = data.coord(root, run_id, "matrix") if data.has(root, run_id, "matrix") else ["W_E", "W_in", "W_out"]
    return _curves(root, run_id, [("participation_ratio", str(n), i) for i, n in enumerate(names)],
                   "participation ratio", "Effective dimensionality (participation ratio)")


def weight_norms(root: str, run_id: str) -> hv.Overlay:
    names = data.coord(root, run_id, "param") if data.has(root, run_id, "param") else ["W_E"]
    return _curves(root, run_id, [("sum_sq_weights", str(n), i) for i, n in enumerate(names)],
                   "sum of squares", "Sum of squared weights per matrix (log)", logy=True,
                   legend="right", width=WIDTH + 90)
