"""Views of the progress measures over training (Nanda et al. 2023): each is a pure function of
(run, choices) -> HoloViews element, reading the store through ``viz.data``."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from viz import data
from viz.plots import HEIGHT, WIDTH

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]


def _curves(root: str, run_id: str, series: list[tuple[str, str, int | None]], ylabel: str,
            title: str, logy: bool = False, legend: str = "top", width: int = WIDTH,
            layer: int | None = None) -> hv.Overlay:
    """``series``: (variable, label, index along its trailing dimension or None[, layer]); a
    per-layer variable at the series' layer, else at ``layer`` (named in the title; None: layer
    0, unnamed)."""
    curves = []
    title += f" · layer {layer}" if layer is not None else ""
    for i, (name, label, index, *at) in enumerate(series):
        epochs, values = data.measure(root, run_id, name, at[0] if at else layer or 0)
        if index is not None and len(values):
            values = values[:, index]
        if logy:
            values = np.maximum(values, 1e-12)
        curves.append(hv.Curve((epochs, values), "epoch", ylabel, label=label if len(series) > 1 else "")
                      .opts(color=COLORS[i % len(COLORS)], title=title))
    return hv.Overlay(curves).opts(
        hv.opts.Curve(width=width, height=HEIGHT, tools=["hover"], logy=logy, line_width=1.8),
        hv.opts.Overlay(title=title, legend_position=legend, logy=logy, show_legend=len(curves) > 1),
    )


def losses(root: str, run_id: str) -> hv.Overlay:
    """Restricted loss (keys only) falls before the test loss; excluded loss (keys removed)
    rises while the train loss stays tiny. Train/test loss shown at the checkpoints."""
    s = data.series(root, run_id)
    epochs = np.asarray(data.analysed_epochs(root, run_id), dtype=int)
    base = [hv.Curve((epochs, np.maximum(s[f"{k}_loss"][epochs], 1e-12)), "epoch", "loss", label=k)
            .opts(color=c, line_dash="dotted") for k, c in (("train", "#7f7f7f"), ("test", "#000000"))]
    measures = _curves(root, run_id, [("restricted_loss", "restricted (test)", 1),
                                      ("restricted_loss", "restricted (train)", 0),
                                      ("excluded_loss", "excluded (train)", None)], "loss", "", logy=True)
    p = data.config(root, run_id)["p"]
    ln_p = hv.HLine(np.log(p)).opts(color="#bbbbbb", line_width=1)
    title = f"Progress measures (log; grey line: ln p = {np.log(p):.2f})"
    return (hv.Overlay(base) * measures * ln_p).opts(
        hv.opts.Curve(width=WIDTH + 170, height=HEIGHT, logy=True, tools=["hover"], title=title),
        hv.opts.Overlay(title=title, legend_position="right", logy=True),
    )


def gini(root: str, run_id: str) -> hv.Overlay:
    """W_E's and W_L's; a deeper model's W_L of each layer (``W_out^l W_U``)."""
    n = data.n_layers(root, run_id) if data.has(root, run_id, "gini_wl") and data.layered(root, run_id, "gini_wl") else 1
    wl = [("gini_wl", "W_L = W_out W_U", None)] if n == 1 else \
        [("gini_wl", f"W_L of layer {layer}", None, layer) for layer in range(n)]
    return _curves(root, run_id, [("gini_embedding", "W_E", None), *wl], "Gini", "Fourier sparsity (Gini)")


def weight_norm(root: str, run_id: str) -> hv.Overlay:
    return _curves(root, run_id, [("sum_sq_weights_total", "all weights", None)], "sum of squares",
                   "Sum of squared weights")


def periodicity(root: str, run_id: str) -> hv.Overlay:
    return _curves(root, run_id, [("logit_periodicity", "key frequencies", None)],
                   "variance explained", "Logit periodicity cos(w(a+b-c))").opts(
        hv.opts.Curve(ylim=(0, 1.02)))


def specialised_share(root: str, run_id: str, threshold: float, layer: int | None = None) -> hv.Curve:
    """Share of the neurons of ``layer`` (None: layer 0, unnamed in the title) with more than
    ``threshold`` of their variance in one frequency."""
    epochs, frac = data.measure(root, run_id, "neuron_freq_fraction", layer or 0)
    share = (frac.max(axis=2) > threshold).mean(axis=1) if len(frac) else np.array([])
    return hv.Curve((epochs, share), "epoch", "share of neurons").opts(
        width=WIDTH, height=HEIGHT, ylim=(0, 1.02), tools=["hover"], color="#2ca02c", line_width=1.8,
        title=f"Neurons with > {threshold:.2f} of variance in one frequency"
              + (f" · layer {layer}" if layer is not None else ""),
    )


def key_frequency_text(root: str, run_id: str, threshold: float, epoch: int, layer: int | None = None) -> str:
    """The key frequencies, and the neurons of ``layer`` (None: layer 0, unnamed) specialised at
    ``epoch``, with the median neuron's strongest fraction beside the share a frequency would
    hold were the variance spread evenly (so that a dense spectrum, with no neuron over the
    threshold, still says how concentrated it is)."""
    keys, attrs = data.key_frequencies(root, run_id)
    frac = data.layer_slice(root, run_id, "neuron_freq_fraction", epoch, layer or 0)  # (neuron, freq)
    share = float((frac.max(axis=1) > threshold).mean())
    median = float(np.median(frac.max(axis=1))) if len(frac) else float("nan")
    dominant = np.bincount(frac.argmax(axis=1)[frac.max(axis=1) > threshold] + 1,
                           minlength=frac.shape[1] + 1)
    clusters = ", ".join(f"k={k}: {n}" for k, n in enumerate(dominant) if n)
    if not keys:
        head = "**Key frequencies**: chosen from the final checkpoint once training ends."
    else:
        head = (f"**Key frequencies**: {', '.join(map(str, keys))}  \n"
                f"<small>rule: {attrs.get('rule')}; threshold {attrs.get('threshold')}; "
                f"epoch {attrs.get('from_epoch')}</small>")
    where = f" of layer {layer}" if layer is not None else ""
    return (f"{head}  \n**Specialised neurons**{where} at epoch {epoch}: {share:.1%} "
            f"(> {threshold:.2f} in one frequency)  \n<small>clusters: {clusters or 'none'}; the median "
            f"neuron's strongest frequency holds {median:.2f} of its variance (spread evenly: "
            f"{1 / max(frac.shape[1], 1):.2f})</small>")
