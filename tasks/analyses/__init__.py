"""The analysis table: each analysis names its function, the hooks it reads and the variables
it writes (with their dimensions). Adding an analysis = a pure function, a row here, a plot in
``viz/plots.py`` and a test.

An analysis's version hashes the source of its module and its parameters; a changed analysis
recomputes, unchanged ones are skipped.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from store.schema import Variable, done_variable
from tasks.analyses import fourier
from tasks.analyses.probe import Probe
from tasks.model import HOOK_POST


@dataclass(frozen=True)
class Analysis:
    name: str
    fn: Callable[[Probe], dict[str, np.ndarray]]
    outputs: tuple[Variable, ...]
    hooks: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)

    @property
    def version(self) -> str:
        source = inspect.getsource(sys.modules[self.fn.__module__])
        digest = hashlib.sha256(f"{source}\n{sorted(self.params.items())}".encode()).hexdigest()
        return f"{self.name}@{digest[:12]}"


def _embedding(probe: Probe) -> dict[str, np.ndarray]:
    return fourier.embedding_spectrum(probe.weights["W_E"].cpu(), probe.p)


def _neuron_activations(probe: Probe) -> dict[str, np.ndarray]:
    p = probe.p
    post = probe.acts(HOOK_POST)  # (p², neuron), a-major rows
    return {"neuron_activations": post.T.reshape(-1, p, p).numpy()}  # (neuron, a, b)


def _neuron_frequencies(probe: Probe) -> dict[str, np.ndarray]:
    p = probe.p
    post = probe.acts(HOOK_POST).T.reshape(-1, p, p)
    return {"neuron_freq_fraction": fourier.neuron_freq_fraction(post, p)}


ANALYSES: tuple[Analysis, ...] = (
    Analysis("embedding_spectrum", _embedding, (
        Variable("embedding_spectrum", ("epoch", "component"), "float32",
                 "embedding Fourier norm", "||(F @ W_E[:p])[i, :]|| per Fourier basis row", hook="W_E"),
        Variable("embedding_freq_norm", ("epoch", "freq"), "float32",
                 "embedding Fourier norm per frequency", "sqrt(cos_k² + sin_k²) of the row norms", hook="W_E"),
    )),
    Analysis("neuron_activations", _neuron_activations, (
        Variable("neuron_activations", ("epoch", "neuron", "a", "b"), "float16",
                 "MLP neuron activation", "post-ReLU activation at '=' over all (a, b); "
                 "float16 for viewing", hook=HOOK_POST, inner_chunk=16),
    ), hooks=(HOOK_POST,)),
    Analysis("neuron_frequencies", _neuron_frequencies, (
        Variable("neuron_freq_fraction", ("epoch", "neuron", "freq"), "float32",
                 "neuron frequency fraction", "fraction of the centred (a, b) map's variance in the "
                 "{const, cos k, sin k} block of F N Fᵀ", hook=HOOK_POST),
    ), hooks=(HOOK_POST,)),
)

BY_NAME = {a.name: a for a in ANALYSES}


def variables() -> list[Variable]:
    """Every variable the analyses write, their done records included."""
    return [v for a in ANALYSES for v in (*a.outputs, done_variable(a.name))]
