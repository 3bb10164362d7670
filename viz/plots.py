"""Plot functions of (run, choices) -> HoloViews element, for the views over training (rendered
once, see ``viz.linked.CurveView``) and the validation report. They read through ``viz.data``
and compute nothing but layout."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from viz import data
from viz.generic import FOURIER_COLORS, fourier_positions, frequency_ticks

# the viewer's first screen, three views across on a 1,480-pixel window: loss, accuracy, spectrum;
# one neuron, the neuron grid, neuron × frequency (pixels)
WIDTH, HEIGHT = 370, 250  # a view's figure
SQUARE = 270  # a neuron map's image area
LOSS_COLORS = {"train": "#1f77b4", "test": "#d62728"}


def _measured(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(y)
    return x[keep], y[keep]


def loss_curves(root: str, run_id: str) -> hv.Overlay:
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
        hv.opts.Curve(logy=True, width=WIDTH, height=HEIGHT, tools=["hover"], line_width=1.5),
        hv.opts.Overlay(title="Loss (log)", legend_position="top", logy=True),
    )


def accuracy_curves(root: str, run_id: str) -> hv.Overlay:
    s = data.series(root, run_id)
    x = np.arange(len(s["train_acc"]))
    curves = [hv.Curve(_measured(x, s[f"{split}_acc"]), "epoch", "accuracy", label=split)
              .opts(color=LOSS_COLORS[split]) for split in ("train", "test")]
    return hv.Overlay(curves).opts(
        hv.opts.Curve(width=WIDTH, height=HEIGHT, tools=["hover"], ylim=(0, 1.02)),
        hv.opts.Overlay(title="Accuracy", legend_position="top"),
    )


def embedding_spectrum(root: str, run_id: str, epoch: int) -> hv.Overlay:
    """Norm of the embedding's Fourier coefficients per basis row (labels from the store), by
    frequency k: cos k just left of k, sin k just right (the hover names each)."""
    labels = data.coord(root, run_id, "component")
    norms = data.epoch_slice(root, run_id, "embedding_spectrum", epoch)
    x, kinds = fourier_positions(labels)
    axis = f"frequency k · {data.task(root, run_id).basis}"
    spikes = [hv.Spikes((x[kinds == kind], norms[kinds == kind], labels[kinds == kind]), axis,
                        ["norm", "component"], label=kind).opts(color=color)
              for kind, color in FOURIER_COLORS.items() if (kinds == kind).any()]
    return hv.Overlay(spikes).opts(
        hv.opts.Spikes(line_width=3, tools=["hover"], xticks=frequency_ticks(int(x.max()))),
        hv.opts.Overlay(width=2 * WIDTH, height=HEIGHT, title=f"Embedding Fourier spectrum · epoch {epoch}",
                        legend_position="top"),
    )


def spectrum_evolution(root: str, run_id: str, top: int = 6) -> hv.Overlay:
    """The embedding's Fourier norm per frequency k over training, for the ``top`` frequencies
    strongest at the last analysed checkpoint: the key frequencies are the curves that rise."""
    epochs, norms = data.measure(root, run_id, "embedding_freq_norm")  # (epoch, freq)
    freqs = data.coord(root, run_id, "freq")
    strongest = np.argsort(-norms[-1])[:top] if len(epochs) else []
    curves = [hv.Curve((epochs, norms[:, i]), "epoch", "norm", label=f"k={freqs[i]}") for i in strongest]
    return hv.Overlay(curves or [hv.Curve([], "epoch", "norm")]).opts(
        hv.opts.Curve(width=WIDTH + 110, height=HEIGHT, tools=["hover"], line_width=1.8),
        hv.opts.Overlay(title=f"Embedding Fourier norm, top {top} frequencies",
                        legend_position="right"),
    )


def neuron_order(root: str, run_id: str, epochs: list[int], layer: int = 0) -> np.ndarray:
    """The neurons of ``layer`` sorted by their dominant frequency (then by its fraction) at the
    last analysed epoch, so frequency clusters show as blocks."""
    frac = data.layer_slice(root, run_id, "neuron_freq_fraction", epochs[-1], layer)
    dominant, strength = frac.argmax(axis=1), frac.max(axis=1)
    return np.lexsort((-strength, dominant))


def neuron_frequencies(root: str, run_id: str, epoch: int, order: tuple[int, ...], layer: int | None = None) -> hv.Image:
    """Neuron × frequency variance fractions of ``layer`` (None: layer 0, unnamed in the title);
    neurons in ``order`` (rows, top to bottom)."""
    frac = data.layer_slice(root, run_id, "neuron_freq_fraction", epoch, layer or 0)[list(order)]
    freqs = data.coord(root, run_id, "freq")
    rank = np.arange(len(order))
    neuron_ids = np.broadcast_to(np.asarray(order)[:, None], frac.shape)  # for the hover
    axis = f"frequency k · {data.task(root, run_id).basis}"
    return hv.Image((freqs, rank, frac, neuron_ids), [axis, "neuron (sorted by dominant k)"],
                    ["fraction", "neuron"]).opts(
        width=WIDTH + 190, height=360, cmap="Blues", clim=(0, 1), colorbar=True, tools=["hover"],
        invert_yaxis=True, title=f"Neuron × frequency variance fraction · epoch {epoch}"
                                 + (f" · layer {layer}" if layer is not None else ""),
    )
