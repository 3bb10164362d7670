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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from store.schema import Variable, done_variable
from tasks.analyses import activations, attention, fourier, progress, weights
from tasks.analyses.reach import code_digest
from tasks.model import HOOK_PATTERN, HOOK_POST


@dataclass(frozen=True)
class Analysis:
    name: str
    fn: Callable[..., dict[str, np.ndarray]]  # (probe) or (probe, key_freqs) -> arrays
    outputs: tuple[Variable, ...]
    hooks: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    needs_keys: bool = False

    def version(self, key_freqs: list[int] | None = None) -> str:
        """``name@digest`` of the code ``fn`` reaches, the parameters and (``needs_keys``) the
        key frequencies; the code's part is computed once per process."""
        keys = f"\n{list(key_freqs)}" if self.needs_keys else ""
        text = f"{code_digest(self.fn)}\n{sorted(self.params.items())}{keys}"
        return f"{self.name}@{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _v(name, dims, dtype, long_name, description, **kw) -> Variable:
    return Variable(name, ("epoch", *dims), dtype, long_name, description, **kw)


ANALYSES: tuple[Analysis, ...] = (
    Analysis("embedding_spectrum", fourier.embedding_spectrum, (
        _v("embedding_spectrum", ("component",), "float32", "embedding Fourier norm",
           "||(F @ W_E[values])[i, :]|| per row of the run's basis F (the operand tokens in basis order)",
           hook="W_E"),
        _v("embedding_freq_norm", ("freq",), "float32", "embedding Fourier norm per frequency",
           "sqrt(cos_k² + sin_k²) of the row norms (|cos n/2| for an even basis's top frequency)", hook="W_E"),
    )),
    Analysis("neuron_activations", activations.neuron_activations, (
        _v("neuron_activations", ("neuron", "a", "b"), "float16", "MLP neuron activation",
           "post-ReLU activation at '=' over all (a, b) in basis order; float16 for viewing",
           hook=HOOK_POST, inner_chunk=16),
    ), hooks=(HOOK_POST,)),
    Analysis("neuron_frequencies", fourier.neuron_frequencies, (
        _v("neuron_freq_fraction", ("neuron", "freq"), "float32", "neuron frequency fraction",
           "fraction of the centred (a, b) map's variance in the {const, cos k, sin k} block of F N Fᵀ "
           "({const, cos n/2} for an even basis's top frequency)",
           hook=HOOK_POST),
    ), hooks=(HOOK_POST,)),
    Analysis("weight_measures", weights.weight_measures, (
        _v("gini_embedding", (), "float64", "Gini of W_E's Fourier norms",
           "Hurley-Rickard Gini of ||(F @ W_E[values])[i]|| over basis rows i"),
        _v("gini_wl", (), "float64", "Gini of W_L's Fourier norms",
           "Gini of the norm over neurons of F-transformed W_L = W_out @ W_U[:, values], per basis row"),
        _v("wl_freq_norm", ("neuron", "freq"), "float32", "W_L Fourier norm per neuron",
           "sqrt(cos_k² + sin_k²) of each neuron's W_L row (classes in basis order) in the run's basis"),
        _v("sum_sq_weights", ("param",), "float64", "sum of squared weights", "per weight matrix"),
        _v("sum_sq_weights_total", (), "float64", "total sum of squared weights", "over every trainable weight"),
        _v("participation_ratio", ("matrix",), "float64", "participation ratio",
           "(sum s²)² / sum s⁴ of the singular values: effective dimensionality"),
    )),
    Analysis("accuracy", progress.accuracy, (
        _v("checkpoint_accuracy", ("split",), "float64", "accuracy", "fraction correct at '=' per split"),
        _v("class_accuracy", ("split", "c"), "float64", "accuracy per residue class",
           "fraction correct among the pairs whose answer is c"),
    )),
    Analysis("attention", attention.attention, (
        _v("attention_mean", ("head", "position"), "float32", "attention from '='",
           "mean attention weight from '=' to each position", hook=HOOK_PATTERN),
        _v("attention_to_a", ("head", "a", "b"), "float32", "attention from '=' to a",
           "attention weight from '=' to the a token, per input", hook=HOOK_PATTERN),
        _v("head_freq_fraction", ("head", "freq"), "float32", "head frequency fraction",
           "variance fractions of each head's attention-to-a map in the run's basis", hook=HOOK_PATTERN),
    ), hooks=(HOOK_PATTERN,)),
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
)

BY_NAME = {a.name: a for a in ANALYSES}


def variables() -> list[Variable]:
    """Every variable the analyses write, their done records included."""
    return [replace(v, attrs={**v.attrs, "analysis": a.name})
            for a in ANALYSES for v in (*a.outputs, _done(a))]


def _done(a: Analysis) -> Variable:
    return done_variable(a.name, needs=("key_frequencies",) if a.needs_keys else ())
