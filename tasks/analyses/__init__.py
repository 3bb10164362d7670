"""The analysis table: each analysis names its function ``fn(probe)`` (or ``fn(probe,
key_freqs)``), the hooks it reads and the variables it writes (with their dimensions). Adding an
analysis = a pure function in an analysis module, a row here and a test; the viewer draws its
variables by their dimensions on its "Every analysis" tab (a curated view in ``viz/`` is
optional). Analyses read the task (inputs, labels, operand grid, split, and the basis every
Fourier quantity is computed in) from the probe only.

An analysis's version hashes the source of its function and of the project code it reaches
(``tasks.analyses.reach``: the helpers it calls in any module, the ``Probe`` members it uses and
what they call, the project constants it reads), its parameters and, for analyses that use them,
the run's key frequencies: a change anywhere in that code recomputes exactly the analyses that
depend on it; the others are skipped. Analyses with ``needs_keys`` wait until the key
frequencies are chosen from the final checkpoint, then run on every checkpoint.

An analysis's ``hooks`` are block-relative (``mlp.hook_post``) and read in every layer
(``hook_names``); a per-layer variable has ``layer`` right after ``epoch``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from store.schema import Variable, done_variable
from tasks.analyses import activations, attention, fourier, layers, llc, progress, weights
from tasks.analyses.reach import code_digest
from tasks.model import ATTN_PATTERN, MLP_POST, RESID_MID, RESID_POST, hook_name


@dataclass(frozen=True)
class Analysis:
    name: str
    fn: Callable[..., dict[str, np.ndarray]]  # (probe) or (probe, key_freqs) -> arrays
    outputs: tuple[Variable, ...]
    hooks: tuple[str, ...] = ()  # block-relative, read in every layer
    params: dict = field(default_factory=dict)
    needs_keys: bool = False
    optional: bool = False  # only for runs that ask for it (tasks.runs.add_analyses)

    def version(self, key_freqs: list[int] | None = None) -> str:
        """``name@digest`` of the code ``fn`` reaches, the parameters and (``needs_keys``) the
        key frequencies; the code's part is computed once per process."""
        keys = f"\n{list(key_freqs)}" if self.needs_keys else ""
        text = f"{code_digest(self.fn)}\n{sorted(self.params.items())}{keys}"
        return f"{self.name}@{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def hook_names(self, n_layers: int) -> tuple[str, ...]:
        """The full names of the hooks it reads in a model of ``n_layers`` layers."""
        return tuple(hook_name(h, layer) for h in self.hooks for layer in range(n_layers))


def _v(name, dims, dtype, long_name, description, **kw) -> Variable:
    return Variable(name, ("epoch", *dims), dtype, long_name, description, **kw)


def _per_layer(name, dims, dtype, long_name, description, **kw) -> Variable:
    return _v(name, ("layer", *dims), dtype, long_name, description, **kw)


RESID = (RESID_MID, RESID_POST)


ANALYSES: tuple[Analysis, ...] = (
    Analysis("embedding_spectrum", fourier.embedding_spectrum, (
        _v("embedding_spectrum", ("component",), "float32", "embedding Fourier norm",
           "||(F @ W_E[values])[i, :]|| per row of the run's basis F (the operand tokens in basis order)",
           hook="W_E"),
        _v("embedding_freq_norm", ("freq",), "float32", "embedding Fourier norm per frequency",
           "sqrt(cos_k² + sin_k²) of the row norms (|cos n/2| for an even basis's top frequency)", hook="W_E"),
    )),
    Analysis("neuron_activations", activations.neuron_activations, (
        _per_layer("neuron_activations", ("neuron", "a", "b"), "float16", "MLP neuron activation",
                   "post-activation (ReLU or GELU) at '=' over all (a, b) in basis order; float16 for viewing",
                   hook=MLP_POST, inner_chunk=16),
    ), hooks=(MLP_POST,)),
    Analysis("neuron_frequencies", fourier.neuron_frequencies, (
        _per_layer("neuron_freq_fraction", ("neuron", "freq"), "float32", "neuron frequency fraction",
                   "fraction of the centred (a, b) map's variance in the {const, cos k, sin k} block of F N Fᵀ "
                   "({const, cos n/2} for an even basis's top frequency)",
                   hook=MLP_POST),
    ), hooks=(MLP_POST,)),
    Analysis("weight_measures", weights.weight_measures, (
        _v("gini_embedding", (), "float64", "Gini of W_E's Fourier norms",
           "Hurley-Rickard Gini of ||(F @ W_E[values])[i]|| over basis rows i"),
        _per_layer("gini_wl", (), "float64", "Gini of W_L's Fourier norms",
                   "Gini of the norm over the layer's neurons of F-transformed W_L = W_out @ W_U[:, values], "
                   "per basis row"),
        _per_layer("wl_freq_norm", ("neuron", "freq"), "float32", "W_L Fourier norm per neuron",
                   "sqrt(cos_k² + sin_k²) of each neuron's W_L = W_out @ W_U row (its direct path to the logits, "
                   "classes in basis order) in the run's basis"),
        _v("sum_sq_weights", ("param",), "float64", "sum of squared weights", "per weight matrix"),
        _v("sum_sq_weights_total", (), "float64", "total sum of squared weights", "over every trainable weight"),
        _per_layer("participation_ratio", ("layer_matrix",), "float64", "participation ratio",
                   "(sum s²)² / sum s⁴ of the singular values of each of the layer's matrices (heads side by "
                   "side): effective dimensionality"),
        _v("participation_ratio_embed", (), "float64", "participation ratio of W_E",
           "(sum s²)² / sum s⁴ of the singular values of W_E's operand-token rows"),
    )),
    Analysis("accuracy", progress.accuracy, (
        _v("checkpoint_accuracy", ("split",), "float64", "accuracy", "fraction correct at '=' per split"),
        _v("class_accuracy", ("split", "c"), "float64", "accuracy per residue class",
           "fraction correct among the pairs whose answer is c"),
    )),
    Analysis("attention", attention.attention, (
        _per_layer("attention_mean", ("head", "position"), "float32", "attention from '='",
                   "mean attention weight from '=' to each position", hook=ATTN_PATTERN),
        _per_layer("attention_to_a", ("head", "a", "b"), "float32", "attention from '=' to a",
                   "attention weight from '=' to the a token, per input", hook=ATTN_PATTERN),
        _per_layer("head_freq_fraction", ("head", "freq"), "float32", "head frequency fraction",
                   "variance fractions of each head's attention-to-a map in the run's basis", hook=ATTN_PATTERN),
    ), hooks=(ATTN_PATTERN,)),
    Analysis("residual_frequencies", layers.residual_frequencies, (
        _per_layer("resid_freq_share", ("site", "freq"), "float32", "residual frequency share",
                   "share of the variance over the inputs of the residual stream at '=' after the layer's "
                   "attention (site attn) or MLP (site mlp), summed over d_model, in each frequency's "
                   "{const, cos k, sin k} block"),
    ), hooks=RESID),
    Analysis("logit_attribution", layers.logit_attribution, (
        _per_layer("logit_attribution", ("site",), "float64", "direct logit attribution",
                   "mean over all pairs of the centred correct logit L[y] - mean_c L[c] written directly by the "
                   "layer's attention (site attn) or MLP (site mlp); divided by the final LayerNorm's scale "
                   "when on; share = value / correct_logit", units="logits"),
        _v("logit_attribution_embed", (), "float64", "direct logit attribution of the embedding",
           "the same for the '=' token's embedding (token + position)", units="logits"),
        _v("correct_logit", (), "float64", "centred correct logit",
           "mean over all pairs of L[y] - mean_c L[c]: the sum of the direct logit attributions", units="logits"),
    ), hooks=RESID),
    Analysis("logit_lens", layers.logit_lens, (
        _per_layer("logit_lens_loss", ("split",), "float64", "logit lens loss",
                   "float64 cross-entropy of the residual stream after the layer unembedded (through the final "
                   "LayerNorm when on)", units="nats"),
        _per_layer("logit_lens_accuracy", ("split",), "float64", "logit lens accuracy",
                   "fraction correct of the residual stream after the layer unembedded"),
    ), hooks=(RESID_POST,)),
    Analysis("logit_lens_progress", layers.logit_lens_progress, (
        _per_layer("logit_lens_restricted_loss", ("split",), "float64", "logit lens restricted loss",
                   "restricted loss of the logit lens after the layer (key frequencies only)", units="nats"),
        _per_layer("logit_lens_excluded_loss", (), "float64", "logit lens excluded loss",
                   "train loss of the logit lens after the layer with the key frequencies removed", units="nats"),
    ), hooks=(RESID_POST,), needs_keys=True),
    Analysis("progress_measures", progress.progress_measures, (
        _v("restricted_loss", ("split",), "float64", "restricted loss",
           "float64 loss of the logits kept to the constant and key-frequency cos/sin(w_k s) terms, "
           "s the answer's basis position (a+b for add)", units="nats"),
        _v("excluded_loss", (), "float64", "excluded loss",
           "float64 train loss with the key-frequency cos/sin(w_k s) terms removed", units="nats"),
        _v("excluded_loss_by_freq", ("freq",), "float64", "excluded loss per frequency",
           "float64 train loss with one key frequency's cos/sin(w_k s) terms removed; "
           "NaN for the other frequencies", units="nats"),
        _v("logit_periodicity", (), "float64", "logit periodicity",
           "fraction of centred-logit variance along cos(w_k(s - s_c)) over the key frequencies, "
           "classes in basis order"),
    ), needs_keys=True),
    Analysis("llc", llc.llc, (
        _v("llc", (), "float64", "local learning coefficient",
           "λ̂ = nβ (mean sampled train loss after burn-in - train loss), mean over the chains that stayed "
           "finite; SGLD around the checkpoint (tasks.analyses.llc)", attrs={"sampler": llc.SAMPLER.as_dict()}),
        _v("llc_std", (), "float64", "LLC spread", "standard deviation of λ̂ over chains"),
        _v("llc_chain", ("chain",), "float64", "LLC per chain", "λ̂ of each chain",
           sizes={"chain": llc.SAMPLER.chains}),
        _v("llc_trace", ("chain", "draw"), "float64", "LLC sampled loss",
           "minibatch train loss at each SGLD draw (burn-in included; NaN after a chain went non-finite)",
           units="nats", sizes={"chain": llc.SAMPLER.chains, "draw": llc.SAMPLER.draws}),
        _v("llc_init_loss", (), "float64", "LLC checkpoint loss",
           "float64 train loss at '=' of the checkpoint, the sampled losses' reference", units="nats"),
        _v("llc_diverged", (), "bool", "LLC diverged",
           "a chain went non-finite or its mean sampled loss reached ln(classes) (twice the checkpoint's "
           "loss where that is higher)"),
        _v("llc_nonstationary", (), "bool", "LLC not stationary",
           "λ̂ of the kept draws' halves differ by > max(1, 10% of λ̂) + 2 standard errors"),
    ), params=llc.SAMPLER.as_dict(), optional=True),
)

BY_NAME = {a.name: a for a in ANALYSES}
STANDARD = tuple(a for a in ANALYSES if not a.optional)  # what every run gets


def variables(optional: tuple[str, ...] = ()) -> list[Variable]:
    """Every variable the analyses write, their done records included: those of the optional
    analyses only when named in ``optional``."""
    return [replace(v, attrs={**v.attrs, "analysis": a.name})
            for a in ANALYSES if not a.optional or a.name in optional for v in (*a.outputs, _done(a))]


def in_store(has: Callable[[str], bool]) -> list[Analysis]:
    """The analyses a run's store asks for: every one not optional, and the optional ones whose
    done record it holds (``has(name)``: whether the store has that array)."""
    return [a for a in ANALYSES if not a.optional or has(f"{a.name}_done")]


def _done(a: Analysis) -> Variable:
    """An optional analysis's record needs ``asked`` (the run asked for it): the viewer's analysed
    checkpoints do not wait for it, as they do not wait for the key frequencies."""
    return done_variable(a.name, needs=("key_frequencies",) * a.needs_keys + ("asked",) * a.optional)
