"""The local learning coefficient's views (stored by ``tasks.analyses.llc``): λ̂ over training
with its spread over chains, and the chains' sampled loss at the current checkpoint.

A flagged value (a chain diverged, or the loss still drifting in the last draws) is never drawn
as if it were good: the curve and its band break there, and the value shows as a red cross."""

from __future__ import annotations

import holoviews as hv
import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure

from viz import data
from viz.linked import TOOLBAR, TOOLS, EpochView
from viz.plots import HEIGHT, WIDTH

CHAIN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
NEEDS = ("llc", "llc_std", "llc_diverged", "llc_nonstationary")


def flagged(root: str, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, λ̂, spread, flagged)`` over the checkpoints whose LLC is done; ``flagged``:
    diverged or not stationary."""
    epochs, llc = data.measure(root, run_id, "llc")
    _, std = data.measure(root, run_id, "llc_std")
    _, diverged = data.measure(root, run_id, "llc_diverged")
    _, drifting = data.measure(root, run_id, "llc_nonstationary")
    return epochs, llc, std, np.asarray(diverged, bool) | np.asarray(drifting, bool)


def over_training(root: str, run_id: str) -> hv.Overlay:
    """λ̂ (mean over chains) with a ± one-standard-deviation band; flagged values as red crosses."""
    epochs, llc, std, bad = flagged(root, run_id)
    good = np.where(bad, np.nan, llc)
    title = "Local learning coefficient λ̂ (band: ± spread over chains; ×: flagged)"
    band = hv.Spread((epochs, good, np.where(bad, np.nan, std)), "epoch", ["λ̂", "spread"]).opts(
        color="#1f77b4", alpha=0.2, line_alpha=0)
    line = hv.Curve((epochs, good), "epoch", "λ̂", label="λ̂").opts(color="#1f77b4", line_width=1.8, tools=["hover"])
    dots = hv.Scatter((epochs, good), "epoch", "λ̂").opts(color="#1f77b4", size=4)
    crosses = hv.Scatter((epochs[bad], llc[bad]), "epoch", "λ̂", label="flagged").opts(
        color="#d62728", marker="x", size=9, line_width=2, tools=["hover"])
    return (band * line * dots * crosses).opts(
        hv.opts.Overlay(title=title, width=WIDTH, height=HEIGHT, legend_position="top_right",
                        show_legend=bool(bad.any())))


class Traces(EpochView):
    """``llc_trace`` (epoch, chain, draw): each chain's sampled minibatch loss per SGLD draw at
    the current checkpoint, the checkpoint's own train loss as a dashed line and the end of
    burn-in as a dotted one; the title says whether the checkpoint's λ̂ is flagged."""

    name = "llc_traces"
    needs = ("llc_trace", "llc_init_loss", *NEEDS)

    def __init__(self, root: str, run_id: str, width: int = WIDTH, height: int = HEIGHT):
        self.root, self.run_id = root, run_id
        chains, draws = data.store(root, run_id).array("llc_trace").shape[1:]
        self.sources = [ColumnDataSource({"draw": np.arange(draws), "loss": np.zeros(draws)}) for _ in range(chains)]
        fig = figure(width=width, height=height, tools=TOOLS, toolbar_location=TOOLBAR,
                     x_axis_label="SGLD draw", y_axis_label="sampled train loss (nats)")
        for i, source in enumerate(self.sources):
            fig.line("draw", "loss", source=source, color=CHAIN_COLORS[i % len(CHAIN_COLORS)],
                     line_width=1.2, legend_label=f"chain {i}")
        fig.add_tools(HoverTool(tooltips=[("draw", "@draw"), ("loss", "@loss{0.0000}")]))
        fig.legend.location, fig.legend.click_policy = "top_left", "hide"
        self.init = Span(location=0, dimension="width", line_dash="dashed", line_color="#000000")
        sampler = data.describe(root, run_id, "llc").get("sampler", {})
        fig.add_layout(self.init)
        fig.add_layout(Span(location=sampler.get("burn_in", 0), dimension="height", line_dash="dotted",
                            line_color="#777777"))
        fig.y_range.syncable = False
        self.figure = fig

    def clone(self) -> "Traces":
        return Traces(self.root, self.run_id, self.figure.width, self.figure.height)

    def load(self, epoch: int) -> tuple:
        read = lambda name: data.epoch_slice(self.root, self.run_id, name, epoch)  # noqa: E731
        return (epoch, read("llc_trace"), float(read("llc_init_loss")), float(read("llc")),
                float(read("llc_std")), bool(read("llc_diverged")), bool(read("llc_nonstationary")))

    def draw(self, loaded: tuple) -> None:
        epoch, trace, init, llc, std, diverged, drifting = loaded
        for source, row in zip(self.sources, trace):
            source.data.update(loss=np.asarray(row, dtype=np.float64))
        self.init.location = init if np.isfinite(init) else 0
        flags = ", ".join(f for f, on in (("diverged", diverged), ("not stationary", drifting)) if on)
        self.figure.title.text = (f"LLC chains at epoch {epoch}: λ̂ = {llc:.3g} ± {std:.2g}"
                                  + (f" · FLAGGED: {flags}" if flags else ""))


def _nearest(epochs: np.ndarray, values: np.ndarray, epoch: int) -> tuple[int, float]:
    i = int(np.argmin(np.abs(epochs - epoch)))
    return int(epochs[i]), float(values[i])


def story(root: str, run_id: str, phases: dict[str, tuple[int, int]]) -> str:
    """Whether λ̂ rises through memorisation and falls through circuit formation and cleanup,
    from the stored values that are not flagged: the first value, the value at the checkpoint
    nearest the end of memorisation and the last value (the phases as ``viz.report.phases``)."""
    epochs, llc, _, bad = flagged(root, run_id)
    if not len(epochs):
        return "Local learning coefficient: not analysed (`tdw analyze RUN_ID --llc` adds it)."
    note = f" {int(bad.sum())} of {len(epochs)} values flagged (diverged or not stationary) and left out." \
        if bad.any() else ""
    epochs, llc = epochs[~bad], llc[~bad]
    if len(epochs) < 3 or "memorisation" not in phases:
        return f"Local learning coefficient: too few good values or phases to judge.{note}"
    end = phases["memorisation"][1]
    (e0, v0), (em, vm), (e1, v1) = (int(epochs[0]), float(llc[0])), _nearest(epochs, llc, end), \
        (int(epochs[-1]), float(llc[-1]))
    peak = int(epochs[int(np.argmax(llc))])
    rises, falls = vm > v0, v1 < vm
    later = "circuit formation and cleanup" if "cleanup" in phases else "the rest of training"
    return (f"Local learning coefficient: λ̂ {'rises' if rises else '**does not rise**'} through memorisation "
            f"({v0:.3g} at epoch {e0:,} → {vm:.3g} at epoch {em:,}, memorisation ending at {end:,}) and "
            f"{'falls' if falls else '**does not fall**'} through {later} (→ {v1:.3g} at epoch {e1:,}); "
            f"its peak is at epoch {peak:,}.{note}")
