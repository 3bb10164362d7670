"""One pure plot function per view: (run, epoch, choices) -> HoloViews element. They read
through ``viz.data`` and compute nothing but layout (sorting, tiling).

Views over training take ``trained_through`` only so that a live run re-draws them when its
stored series grow: the value itself is not used."""

from __future__ import annotations

import math

import holoviews as hv
import numpy as np

from viz import data

WIDTH = 560
LOSS_COLORS = {"train": "#1f77b4", "test": "#d62728"}


def _measured(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(y)
    return x[keep], y[keep]


def loss_curves(root: str, run_id: str, trained_through: int = -1) -> hv.Overlay:
    """Train and test loss over every epoch, log scale, with the checkpoints marked."""
    s = data.series(root, run_id)
    x = np.arange(len(s["train_loss"]))
    curves = []
    for split in ("train", "test"):
        ex, ey = _measured(x, s[f"{split}_loss"])
        curves.append(hv.Curve((ex, np.maximum(ey, 1e-12)), "epoch", "loss", label=split)
                      .opts(color=LOSS_COLORS[split]))
    ckpts = np.asarray(data.analysed_epochs(root, run_id), dtype=int)
    trained = ckpts[ckpts < len(x)]
    marks = hv.Scatter((trained, np.maximum(np.nan_to_num(s["train_loss"][trained], nan=1.0), 1e-12)),
                       "epoch", "loss", label="checkpoints").opts(color="black", size=4, marker="circle")
    return hv.Overlay([*curves, marks]).opts(
        hv.opts.Curve(logy=True, width=WIDTH, height=260, tools=["hover", "tap"], line_width=1.5),
        hv.opts.Overlay(title="Loss (log)", legend_position="top_right", logy=True),
    )


def accuracy_curves(root: str, run_id: str, trained_through: int = -1) -> hv.Overlay:
    s = data.series(root, run_id)
    x = np.arange(len(s["train_acc"]))
    curves = [hv.Curve(_measured(x, s[f"{split}_acc"]), "epoch", "accuracy", label=split)
              .opts(color=LOSS_COLORS[split]) for split in ("train", "test")]
    return hv.Overlay(curves).opts(
        hv.opts.Curve(width=WIDTH, height=200, tools=["hover"], ylim=(0, 1.02)),
        hv.opts.Overlay(title="Accuracy", legend_position="bottom_right"),
    )


def epoch_marker(epoch: int) -> hv.VLine:
    return hv.VLine(epoch).opts(color="#555555", line_dash="dashed", line_width=1.5)


def embedding_spectrum(root: str, run_id: str, epoch: int) -> hv.Bars:
    """Norm of the embedding's Fourier coefficients per basis row (labels from the store)."""
    labels = data.coord(root, run_id, "component")
    norms = data.epoch_slice(root, run_id, "embedding_spectrum", epoch)
    return hv.Bars((labels, norms), "component", "norm").opts(
        width=WIDTH, height=260, title=f"Embedding Fourier spectrum · epoch {epoch}",
        xrotation=90, tools=["hover"], color="#4c72b0", line_color=None,
        xaxis=None if len(labels) > 70 else "bottom", framewise=True,
    )


def neuron_heatmap(root: str, run_id: str, epoch: int, neuron: int) -> hv.Image:
    """One neuron's post-ReLU activation over (a, b); a on the vertical axis, a = 0 at the bottom."""
    a = data.coord(root, run_id, "a")
    b = data.coord(root, run_id, "b")
    acts = data.epoch_slice(root, run_id, "neuron_activations", epoch, neuron).astype(np.float32)
    return hv.Image((b, a, acts), ["b", "a"], "activation").opts(
        width=330, height=300, cmap="viridis", colorbar=True, tools=["hover"],
        title=f"Neuron {neuron} · epoch {epoch}", framewise=True,
    )


def grid_neurons(root: str, run_id: str, epochs: list[int], k: int = 16) -> np.ndarray:
    """The ``k`` neurons with the largest activation variance at the last analysed epoch (a
    fixed set, so scrubbing shows how the same neurons form)."""
    acts = data.epoch_slice(root, run_id, "neuron_activations", epochs[-1]).astype(np.float32)
    var = acts.reshape(len(acts), -1).var(axis=1)
    return np.sort(np.argsort(var)[::-1][:k])


def neuron_grid(root: str, run_id: str, epoch: int, neurons: tuple[int, ...]) -> hv.Image:
    """Several neurons' (a, b) maps tiled into one image (one shared colour range)."""
    acts = data.epoch_slice(root, run_id, "neuron_activations", epoch).astype(np.float32)
    p, cols = acts.shape[1], math.ceil(math.sqrt(len(neurons)))
    rows = math.ceil(len(neurons) / cols)
    gap = max(1, p // 12)
    mosaic = np.full((rows * (p + gap) - gap, cols * (p + gap) - gap), np.nan, dtype=np.float32)
    for i, n in enumerate(neurons):
        r, c = divmod(i, cols)
        top = (rows - 1 - r) * (p + gap)  # first neuron at the top left; a = 0 at each tile's bottom
        mosaic[top:top + p, c * (p + gap):c * (p + gap) + p] = acts[n]
    h, w = mosaic.shape
    return hv.Image(mosaic, bounds=(0, 0, w, h), vdims="activation").opts(
        width=420, height=int(420 * h / w) + 30, cmap="viridis", colorbar=True, xaxis=None,
        yaxis=None, title=f"Top-{len(neurons)} neurons by variance · epoch {epoch}",
        clipping_colors={"NaN": "white"}, framewise=True,
    )


def neuron_order(root: str, run_id: str, epochs: list[int]) -> np.ndarray:
    """Neurons sorted by their dominant frequency (then by its fraction) at the last analysed
    epoch, so frequency clusters show as blocks."""
    frac = data.epoch_slice(root, run_id, "neuron_freq_fraction", epochs[-1])
    dominant, strength = frac.argmax(axis=1), frac.max(axis=1)
    return np.lexsort((-strength, dominant))


def neuron_frequencies(root: str, run_id: str, epoch: int, order: tuple[int, ...]) -> hv.Image:
    """Neuron × frequency variance fractions; neurons in ``order`` (rows, top to bottom)."""
    frac = data.epoch_slice(root, run_id, "neuron_freq_fraction", epoch)[list(order)]
    freqs = data.coord(root, run_id, "freq")
    rank = np.arange(len(order))
    neuron_ids = np.broadcast_to(np.asarray(order)[:, None], frac.shape)  # for the hover
    return hv.Image((freqs, rank, frac, neuron_ids), ["frequency k", "neuron (sorted by dominant k)"],
                    ["fraction", "neuron"]).opts(
        width=WIDTH, height=360, cmap="Blues", clim=(0, 1), colorbar=True, tools=["hover"],
        invert_yaxis=True, title=f"Neuron × frequency variance fraction · epoch {epoch}",
    )
