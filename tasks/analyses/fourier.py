"""Fourier analyses of the embedding and of the MLP neurons (REFERENCE.md, "Analyses").

Frequencies are named by ``k = 1 .. (p-1)/2``; the basis rows are ``const, cos 1, sin 1, ...``
(``store.schema.fourier_labels``), and the stored labels are the single truth.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from tasks.analyses.probe import Probe
from tasks.model import HOOK_POST


@functools.lru_cache(maxsize=8)
def fourier_basis(p: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal (p, p) basis: row 0 constant ``1/sqrt(p)``; rows ``2k-1, 2k`` are
    ``cos(2*pi*k*x/p)``, ``sin(2*pi*k*x/p)`` scaled to unit norm."""
    if p < 3 or p % 2 == 0:
        raise ValueError(f"the Fourier basis needs an odd p >= 3, got {p}")
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * torch.pi * k * x / p), torch.sin(2 * torch.pi * k * x / p)]
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).to(dtype)


def per_frequency(row_values: torch.Tensor) -> torch.Tensor:
    """Combine the cos and sin rows of a per-basis-row norm: ``(..., p) -> (..., (p-1)/2)``,
    ``sqrt(cos_k² + sin_k²)``."""
    pairs = row_values[..., 1:].unflatten(-1, (-1, 2))
    return pairs.pow(2).sum(-1).sqrt()


def embedding_spectrum(probe: Probe) -> dict[str, np.ndarray]:
    """The Fourier spectrum of the checkpoint's embedding (``embedding_norms``)."""
    return embedding_norms(probe.weights["W_E"].cpu(), probe.p)


def neuron_frequencies(probe: Probe) -> dict[str, np.ndarray]:
    """Each MLP neuron's frequency fractions over its map on the operand grid."""
    return {"neuron_freq_fraction": neuron_freq_fraction(probe.on_grid(probe.acts(HOOK_POST)), probe.p)}


def embedding_norms(W_E: torch.Tensor, p: int) -> dict[str, np.ndarray]:
    """``W_E (d_vocab, d_model)`` -> norms of ``F @ W_E[:p]`` per basis row, shape (p,), and per
    frequency, shape ((p-1)/2,). Parseval: ``sum(norms²) == ||W_E[:p]||²``."""
    coeffs = fourier_basis(p, torch.float64) @ W_E[:p].double()  # (component, d_model)
    norms = coeffs.norm(dim=1)
    return {
        "embedding_spectrum": norms.float().numpy(),
        "embedding_freq_norm": per_frequency(norms).float().numpy(),
    }


def neuron_freq_fraction(acts: torch.Tensor, p: int) -> np.ndarray:
    """``acts (neuron, a, b)`` -> fraction of each neuron's centred variance in frequency k,
    shape (neuron, (p-1)/2), values in [0, 1], each row summing to <= 1.

    For a neuron map N (centred), ``A = F N Fᵀ``; frequency k owns the 3×3 block of rows and
    columns {const, cos k, sin k}. A constant neuron has no variance and gets zeros.
    """
    basis = fourier_basis(p, torch.float32)
    centred = acts.float() - acts.float().mean(dim=(1, 2), keepdim=True)
    energy = (basis @ centred @ basis.T).pow_(2)  # (neuron, component, component)
    n, K = len(energy), (p - 1) // 2
    # sum rows 2k-1, 2k (cos k, sin k) into row k: (neuron, 1 + K, p); then the same for columns
    rows = torch.cat([energy[:, :1], energy[:, 1:].reshape(n, K, 2, p).sum(2)], dim=1)
    grouped = torch.cat([rows[:, :, :1], rows[:, :, 1:].reshape(n, K + 1, K, 2).sum(-1)], dim=2)
    diag = grouped.diagonal(dim1=1, dim2=2)  # (neuron, 1 + K)
    block = diag[:, 1:] + grouped[:, 1:, 0] + grouped[:, 0, 1:] + diag[:, :1]
    total = centred.pow(2).sum(dim=(1, 2))[:, None]  # Parseval: F is orthonormal
    frac = torch.where(total > 0, block / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    return frac.clamp(0, 1).numpy()


KEY_RULE = "embedding norm per frequency >= threshold x its maximum, at the final checkpoint"


def key_frequencies(W_E: torch.Tensor, p: int, threshold: float = 0.5) -> list[int]:
    """The run's key frequencies k (1-based): those whose embedding norm
    ``sqrt(cos_k² + sin_k²)`` is at least ``threshold`` times the largest."""
    norms = torch.from_numpy(embedding_norms(W_E, p)["embedding_freq_norm"])
    return [int(k) + 1 for k in torch.nonzero(norms >= threshold * norms.max()).flatten()]
