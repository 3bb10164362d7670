"""A self-contained validation report of one run: the grokking story told by the progress
measures (Nanda et al. 2023), with each of the paper's claims checked against the store. The
claims are about Fourier structure: for a task whose basis is a convention (``residues``, no
group law) they are not applicable, and the report says so instead of judging them.

Phases (drawn on every curve): memorisation until train accuracy first reaches 0.99; circuit
formation until test accuracy first reaches 0.5; cleanup until test accuracy first reaches 0.99.

The verdicts read the final logits at any depth; per-layer measures are judged on the last
layer (W_L: its neurons' direct path to the logits) or on the best layer (neuron
specialisation), with every layer's number in the evidence. For a model deeper than one layer,
the report adds where each key frequency first appears (``APPEARS``). A store written before the
``layer`` dimension reads as layer 0 of a 1-layer model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import holoviews as hv
import numpy as np
import panel as pn

from store.schema import SITES
from tasks import adaptive, knobs, published
from tasks.config import RunConfig
from viz import data, depth, llc, plots, progress

hv.extension("bokeh", logo=False)

WIDTH = 560  # a curve of the report (its legend included), two across
PHASE_COLORS = {"memorisation": "#fde0dd", "circuit formation": "#e0ecf4", "cleanup": "#e5f5e0"}


def _first(epochs: np.ndarray, values: np.ndarray, ok) -> int | None:
    keep = ~np.isnan(values)
    hits = np.flatnonzero(ok(values[keep]))
    return int(epochs[keep][hits[0]]) if len(hits) else None


def phases(root: str, run_id: str) -> dict[str, tuple[int, int]]:
    s = data.series(root, run_id)
    e = np.arange(len(s["train_acc"]))
    mem = _first(e, s["train_acc"], lambda v: v >= 0.99)
    circuit = _first(e, s["test_acc"], lambda v: v >= 0.5)
    clean = _first(e, s["test_acc"], lambda v: v >= 0.99)
    out = {}
    if mem is not None:
        out["memorisation"] = (0, mem)
        if circuit is not None and circuit > mem:
            out["circuit formation"] = (mem, circuit)
            if clean is not None and clean > circuit:
                out["cleanup"] = (circuit, clean)
    return out


NOT_APPLICABLE = "not applicable (no group law of this task)"
GENERALISED = 0.95  # test accuracy that counts as generalised
INITS = {  # the initialisation schemes (tasks.config.INITS), as the report names them
    "legacy": "legacy (the HookedTransformer's: every weight N(0, 0.64/d_model))",
    "native": "native (TransformerLens 4's: W_O and W_out at 1/sqrt(2 n_layers) of the legacy std)",
    "nanda": "nanda (the original code of Nanda et al. 2023: N(0, 1/d_model), W_U N(0, 1/d_vocab))",
}


def model_line(cfg: RunConfig) -> str:
    m = cfg.model
    return (f"Model: {m.n_layers} layer{'s' * (m.n_layers != 1)}, {m.n_heads} heads, d_model {m.d_model}, "
            f"d_mlp {m.d_mlp}, {m.act_fn}{', LayerNorm' if m.normalization_type else ''}; "
            f"initialisation {INITS.get(m.init, m.init)}. Seeds: model {cfg.seed}, data {cfg.data_seed}.")


def schedule_line(root: str, run_id: str, cfg: RunConfig) -> str:
    """The checkpoint schedule: fixed, or the adaptive rule with its budget, floor and thresholds
    (``tasks.adaptive``, as recorded in the run's config); and how many checkpoints fall inside
    the generalisation window (test accuracy 0.1 → 0.95)."""
    epochs = cfg.checkpoint_epochs
    if cfg.schedule == "adaptive":
        loss, acc, dist = cfg.schedule_thresholds
        text = (f"Checkpoints: {len(epochs)} of at most {cfg.checkpoints_max}, adaptive: one where, since the "
                f"last, |Δ ln(test loss + {adaptive.LOSS_FLOOR})| ≥ {loss:g}, |Δ test accuracy| ≥ {acc:g} or "
                f"‖θ − θ_last‖/‖θ_last‖ ≥ {dist:g} (thresholds over {cfg.checkpoint_floor:,} epochs, lower over "
                f"fewer, raised as the budget runs down), and at least one every {cfg.checkpoint_floor:,} epochs.")
    else:
        text = f"Checkpoints: {len(epochs)}, fixed schedule."
    found = adaptive.window(data.series(root, run_id)["test_acc"])
    if found:
        lo, hi = found
        inside = sum(lo <= e <= hi for e in epochs)
        text += (f" {inside} inside the generalisation window {lo:,}–{hi:,} (test accuracy 0.1 → 0.95, "
                 f"{(hi - lo + 1) / cfg.num_epochs:.0%} of the epochs).")
    return text


def generalisation(root: str, run_id: str, cfg: RunConfig) -> str:
    """When test accuracy first reached ``GENERALISED``; or, plainly, that it has not by the last
    epoch trained, with the command that extends and analyses the run (twice the epochs; an
    adaptive run keeps its schedule, with twice the checkpoints)."""
    s = data.series(root, run_id)
    e = np.arange(len(s["test_acc"]))
    at = _first(e, s["test_acc"], lambda v: v >= GENERALISED)
    if at is not None:
        return f"Generalised: test accuracy first ≥ {GENERALISED} at epoch {at:,}.{_published(cfg)}"
    tested = e[~np.isnan(s["test_acc"])]
    if not len(tested):
        return "Generalisation: nothing trained yet."
    last, acc = int(tested[-1]), float(s["test_acc"][tested[-1]])
    trained = int(e[~np.isnan(s["train_loss"])][-1])
    if trained < cfg.num_epochs - 1:
        return (f"Not generalised yet: test accuracy {acc:.2f} at epoch {last:,}, trained to {trained:,} "
                f"of {cfg.num_epochs - 1:,}.")
    more = 2 * cfg.num_epochs
    schedule = (["--schedule", "adaptive", "--checkpoints-max", str(2 * cfg.checkpoints_max)]
                if cfg.schedule == "adaptive" else [])
    extend = " ".join(["tdw run", *knobs.options(cfg), *schedule, "--epochs", str(more), "--runs", root])
    return (f"**Not generalised by its last epoch ({last:,}): test accuracy {acc:.2f} (generalised means "
            f"≥ {GENERALISED}).** Some seeds grok later than others; extend it to {more:,} epochs "
            f"(same run id, checkpoints kept): `{extend}`{_published(cfg)}")


def _published(cfg: RunConfig) -> str:
    """For a run of the canonical setup, the published times to compare with; else ""."""
    if not published.comparable(cfg):
        return ""
    return (" Published at these settings: " + "; ".join(f"{who}: {what}" for who, what in published.GROKKING)
            + ". This workbench's seeds, per initialisation: docs/benchmarks.md (`bench/grokking_seeds.py`).")


@dataclass
class Check:
    claim: str
    holds: bool | None  # None: cannot be judged (data missing, or the claim does not apply)
    evidence: str
    applies: bool = True  # False: a Fourier claim on a basis that is only a convention


def _rate(epochs, values, span) -> float:
    lo, hi = span
    at = lambda t: np.interp(t, epochs, values)  # noqa: E731
    return (at(hi) - at(lo)) / max(hi - lo, 1)


def checks(root: str, run_id: str) -> list[Check]:
    p = data.config(root, run_id)["p"]
    s = data.series(root, run_id)
    ph = phases(root, run_id)
    out = []

    epochs, restricted = data.measure(root, run_id, "restricted_loss")
    if len(epochs):
        r_at = _first(epochs, restricted[:, 2], lambda v: v < 1.0)
        t_at = _first(np.arange(len(s["test_loss"])), s["test_loss"], lambda v: v < 1.0)
        holds = r_at is not None and (t_at is None or r_at < t_at)
        out.append(Check("Restricted loss falls well before the test loss", holds,
                         f"restricted loss (all pairs) < 1 nat at epoch {r_at}; test loss < 1 nat at epoch {t_at}"))
        ex_epochs, excluded = data.measure(root, run_id, "excluded_loss")
        train_at = s["train_loss"][ex_epochs]
        both = (excluded > math.log(p)) & (train_at < 1e-2)
        first = int(ex_epochs[both][0]) if both.any() else None
        out.append(Check("Excluded loss rises above ln p while the train loss stays tiny", bool(both.any()),
                         f"max excluded loss {excluded.max():.2f} (ln p = {math.log(p):.2f}); "
                         f"first above ln p with train loss < 0.01 at epoch {first}"))
    else:
        out.append(Check("Restricted and excluded loss", None, "not analysed yet (key frequencies pending)"))

    for name, label in (("gini_embedding", "W_E"), ("gini_wl", "W_L")):
        ge, gv = data.measure(root, run_id, name)
        if gv.ndim == 2:  # (epoch, layer): the last layer's neurons write the logits directly
            gv, label = gv[:, -1], label + (" (last layer)" if gv.shape[1] > 1 else "")
        if len(ge) >= 2 and "cleanup" in ph and "circuit formation" in ph:
            clean, circuit = _rate(ge, gv, ph["cleanup"]), _rate(ge, gv, ph["circuit formation"])
            out.append(Check(f"Gini of {label}'s Fourier norms rises sharply during cleanup",
                             clean > 0 and clean > 2 * max(circuit, 0),
                             f"{gv[0]:.2f} → {gv[-1]:.2f}; rise per 1k epochs: cleanup {clean * 1e3:.3f}, "
                             f"circuit formation {circuit * 1e3:.3f}"))
        else:
            out.append(Check(f"Gini of {label} rises during cleanup", None, "phases or data missing"))

    fe, frac = data.measure(root, run_id, "neuron_freq_fraction")
    if len(fe):
        final = frac[-1].reshape(-1, *frac.shape[-2:])  # (layer, neuron, freq); an older store's is one layer
        shares = (final.max(axis=2) > 0.85).mean(axis=1)
        deep = len(shares) > 1
        out.append(Check("≥ 75% of neurons have > 0.85 of their variance in one frequency at the end"
                         + (" (in at least one layer)" if deep else ""), float(shares.max()) >= 0.75,
                         ", ".join((f"layer {i}: " if deep else "") + f"{v:.1%}" for i, v in enumerate(shares))
                         + f" at epoch {int(fe[-1])}"))
    pe, per = data.measure(root, run_id, "logit_periodicity")
    if len(pe):
        out.append(Check("Logit periodicity explains ≥ 0.9 of the logit variance at the end",
                         float(per[-1]) >= 0.9, f"{float(per[-1]):.3f} at epoch {int(pe[-1])}"))
    if data.task(root, run_id).kind == "residues":  # every claim above is about Fourier structure
        out = [replace(c, holds=None, applies=False) for c in out]
    return out


APPEARS = ("a key frequency k appears after layer l at the first analysed epoch at which its share of the "
           "variance over the inputs of the residual stream at '=' after that layer's MLP (resid_freq_share, "
           "site mlp) reaches max(1/(2m), 2/K): half an even split among the m key frequencies, and twice an "
           "even split among all K frequencies")


def appearances(root: str, run_id: str, keys: list[int]) -> dict[int, list[int | None]]:
    """For each key frequency, the epoch it appears after each layer (``APPEARS``; None: not
    by the last analysed epoch); empty without key frequencies or residual shares."""
    epochs, share = data.measure(root, run_id, "resid_freq_share")  # (epoch, layer, site, freq)
    if not len(epochs) or not keys:
        return {}
    after_mlp = share[:, :, SITES.index("mlp")]  # (epoch, layer, freq)
    threshold = max(1 / (2 * len(keys)), 2 / after_mlp.shape[-1])
    return {k: [_first(epochs, after_mlp[:, layer, k - 1], lambda v: v >= threshold)
                for layer in range(after_mlp.shape[1])] for k in keys}


def appearance_lines(root: str, run_id: str, keys: list[int] | None) -> list[str]:
    """The markdown table of ``appearances``: where (layer, epoch) each key frequency appears
    first, and when after every layer."""
    found = appearances(root, run_id, keys or [])
    if not found:
        return ["Where each key frequency first appears: not analysed (needs the key frequencies and "
                "resid_freq_share; `tdw analyze` adds it)."]
    lines = [f"Where each key frequency first appears ({APPEARS}):", "",
             "| k | first appears | after each layer |", "|---|---|---|"]
    for k, at in found.items():
        seen = [(e, layer) for layer, e in enumerate(at) if e is not None]
        first = "not yet" if not seen else "layer {1} at epoch {0:,}".format(*min(seen))
        each = "; ".join(f"layer {layer}: " + ("—" if e is None else f"{e:,}") for layer, e in enumerate(at))
        lines.append(f"| {k} | {first} | {each} |")
    return lines


def markdown(root: str, run_id: str) -> str:
    keys, attrs = data.key_frequencies(root, run_id)
    task = data.task(root, run_id)
    convention = "" if task.kind == "fourier" else \
        " The Fourier basis over them is a convention, so the Fourier claims below are not applicable."
    cfg = RunConfig.from_dict(data.config(root, run_id))
    lines = [f"# Validation report: `{run_id}`", "",
             f"Task: `{task.name}`, {task.formula}. Basis: {task.basis}.{convention}", "",
             model_line(cfg), "", generalisation(root, run_id, cfg), "", schedule_line(root, run_id, cfg), "",
             "Phases: " + "; ".join(f"{k} {a}–{b}" for k, (a, b) in phases(root, run_id).items()), "",
             f"Key frequencies: {keys} ({attrs.get('rule', 'not chosen yet')})", "",
             "| claim (Nanda et al. 2023) | holds | evidence |", "|---|---|---|"]
    for c in checks(root, run_id):
        mark = {True: "yes", False: "**no**", None: "n/a"}[c.holds] if c.applies else NOT_APPLICABLE
        lines.append(f"| {c.claim} | {mark} | {c.evidence} |")
    if cfg.model.n_layers > 1:
        lines += ["", *appearance_lines(root, run_id, keys)]
    lines += ["", llc.story(root, run_id, phases(root, run_id))]
    return "\n".join(lines)


def _with_phases(element, spans: dict[str, tuple[int, int]]):
    """The element with the training phases shaded, keeping its title and legend."""
    shades = [hv.VSpan(a, b).opts(color=PHASE_COLORS[name], alpha=0.3) for name, (a, b) in spans.items()]
    plot = element.opts.get().kwargs
    legend = plot.get("legend_position", "top_right")  # the viewer's legends above -> right of the plot here
    return (element * hv.Overlay(shades)).opts(title=plot.get("title", ""), width=WIDTH,
                                               legend_position="right" if legend == "top" else legend)


def build(root: str, run_id: str) -> pn.viewable.Viewable:
    spans = phases(root, run_id)
    epochs = data.analysed_epochs(root, run_id)
    legend = " · ".join(f"<span style='background:{c}'>&nbsp;{n}&nbsp;</span>" for n, c in PHASE_COLORS.items())
    figures = [
        plots.loss_curves(root, run_id), plots.accuracy_curves(root, run_id),
        progress.losses(root, run_id), progress.periodicity(root, run_id),
        progress.gini(root, run_id), progress.weight_norm(root, run_id),
        progress.specialised_share(root, run_id, 0.85),
    ]
    if data.has(root, run_id, *llc.NEEDS):
        figures.append(llc.over_training(root, run_id))
    n_layers = RunConfig.from_dict(data.config(root, run_id)).model.n_layers
    if n_layers > 1:  # what each layer does over training, one curve per layer
        figures += [draw(root, run_id) for name, draw in (
            ("resid_freq_share", depth.residual_shares), ("logit_attribution", depth.logit_attribution),
            ("logit_lens_accuracy", depth.logit_lens), ("logit_lens_loss", depth.logit_lens_loss))
            if data.has(root, run_id, name)]
    final = epochs[-1]
    layers = [None] if n_layers == 1 else list(range(n_layers))  # None: one layer, unnamed
    neurons = [plots.neuron_frequencies(root, run_id, final, tuple(int(n) for n in plots.neuron_order(
        root, run_id, epochs, layer or 0)), layer) for layer in layers]
    return pn.Column(
        pn.pane.Markdown(markdown(root, run_id), width=1000),
        pn.pane.HTML(f"Shaded phases: {legend}"),
        pn.GridBox(*[pn.pane.HoloViews(_with_phases(f, spans)) for f in figures], ncols=2),
        pn.pane.Markdown(progress.key_frequency_text(root, run_id, 0.85, final), width=1000),
        pn.pane.HoloViews(plots.embedding_spectrum(root, run_id, final)),
        pn.GridBox(*[pn.pane.HoloViews(figure) for figure in neurons], ncols=2),
    )


def write(root: str, run_id: str, path: str) -> str:
    """Write the self-contained HTML report (Bokeh resources inline) and return its markdown."""
    from bokeh.resources import INLINE

    build(root, run_id).save(path, resources=INLINE, title=f"Report {run_id}")
    return markdown(root, run_id)
