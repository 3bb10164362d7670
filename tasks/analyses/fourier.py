"""Fourier analyses of the embedding and of the MLP neurons in the run's basis (REFERENCE.md,
"Analyses" and "Other tasks and their bases").

The basis (``tasks.problems.basis.Basis``) is the Fourier basis of Z_n laid over the operand
values in basis order: n = p over the residues (add, sub, the polynomials), n = p - 1 over the
discrete logs (mul, div). Its rows are ``const, cos 1, sin 1, ...`` and, for even n, one last
row ``cos n/2``; frequencies are ``k = 1 .. n//2``, and frequency k owns the rows
``basis.rows(k)`` (two, or the one ``cos n/2`` row). The stored labels are the basis's.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from tasks.analyses.probe import Probe
from tasks.model import MLP_POST
from tasks.problems.basis import Basis


@functools.lru_cache(maxsize=16)
def basis_matrix(basis: Basis, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``basis.matrix`` as a torch tensor: (n, n) orthonormal rows over basis positions."""
    return torch.tensor(basis.matrix, dtype=torch.float64).to(dtype)


def by_frequency(x: torch.Tensor, basis: Basis, dim: int = -1) -> torch.Tensor:
    """Sum the basis rows along ``dim`` per frequency: size n -> 1 + n//2, entry 0 the const
    row, entry k the rows of frequency k (cos k + sin k; for even n the last entry is the
    ``cos n/2`` row alone)."""
    dim, K = dim % x.ndim, (basis.n - 1) // 2  # K: frequencies with a cos and a sin row
    parts = [x.narrow(dim, 0, 1), x.narrow(dim, 1, 2 * K).unflatten(dim, (K, 2)).sum(dim + 1)]
    if basis.n % 2 == 0:
        parts.append(x.narrow(dim, basis.n - 1, 1))
    return torch.cat(parts, dim=dim)


def per_frequency(row_values: torch.Tensor, basis: Basis) -> torch.Tensor:
    """Combine a per-basis-row norm per frequency: ``(..., n) -> (..., n//2)``,
    ``sqrt(cos_k² + sin_k²)`` (``|cos n/2|`` for the even-n top frequency)."""
    return by_frequency(row_values.pow(2), basis)[..., 1:].sqrt()


def embedding_spectrum(probe: Probe) -> dict[str, np.ndarray]:
    """The embedding's spectrum in the run's basis (``embedding_norms``)."""
    return embedding_norms(probe.weights["W_E"].cpu(), probe.basis)


def neuron_frequencies(probe: Probe) -> dict[str, np.ndarray]:
    """Each layer's MLP neurons' frequency fractions over their maps on the operand grid:
    (layer, neuron, freq)."""
    return {"neuron_freq_fraction": np.stack([
        neuron_freq_fraction(probe.on_grid(probe.layer_acts(MLP_POST, layer)), probe.basis)
        for layer in range(probe.n_layers)])}


def embedding_norms(W_E: torch.Tensor, basis: Basis) -> dict[str, np.ndarray]:
    """``W_E (d_vocab, d_model)`` -> norms of ``F @ W_E[values]`` (the operand tokens' rows in
    basis order) per basis row, shape (n,), and per frequency, shape (n//2,). Parseval:
    ``sum(norms²) == ||W_E[values]||²``."""
    coeffs = basis_matrix(basis, torch.float64) @ W_E[list(basis.values)].double()  # (component, d_model)
    norms = coeffs.norm(dim=1)
    return {
        "embedding_spectrum": norms.float().numpy(),
        "embedding_freq_norm": per_frequency(norms, basis).float().numpy(),
    }


def neuron_freq_fraction(acts: torch.Tensor, basis: Basis) -> np.ndarray:
    """``acts (neuron, a, b)`` on the grid in basis order -> fraction of each neuron's centred
    variance in frequency k, shape (neuron, n//2), values in [0, 1], each row summing to <= 1
    (``freq_energy``). A constant neuron has no variance and gets zeros.
    """
    block, total = freq_energy(acts, basis)
    frac = torch.where(total > 0, block / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    return frac.clamp(0, 1).numpy()


def freq_energy(acts: torch.Tensor, basis: Basis) -> tuple[torch.Tensor, torch.Tensor]:
    """``acts (map, a, b)`` on the grid in basis order -> ``(block (map, n//2), total (map, 1))``:
    each centred map's energy in frequency k and its whole energy, float32.

    For a map N (centred), ``A = F N Fᵀ``; frequency k owns the block of rows and columns
    {const, cos k, sin k} of A (for the even-n top frequency {const, cos n/2}: sin n/2 is
    identically zero); ``total = ||N||²`` (Parseval: F is orthonormal).
    """
    F = basis_matrix(basis, torch.float32)
    centred = acts.float() - acts.float().mean(dim=(1, 2), keepdim=True)
    energy = (F @ centred @ F.T).pow_(2)  # (neuron, component, component)
    grouped = by_frequency(by_frequency(energy, basis, dim=1), basis, dim=2)  # (neuron, 1 + K, 1 + K)
    diag = grouped.diagonal(dim1=1, dim2=2)  # (neuron, 1 + K)
    block = diag[:, 1:] + grouped[:, 1:, 0] + grouped[:, 0, 1:] + diag[:, :1]
    return block, centred.pow(2).sum(dim=(1, 2))[:, None]


KEY_RULE = "embedding norm per frequency >= threshold x its maximum, at the final checkpoint"


def key_frequencies(W_E: torch.Tensor, basis: Basis, threshold: float = 0.5) -> list[int]:
    """The run's key frequencies k (1-based, in the run's basis): those whose embedding norm
    ``sqrt(cos_k² + sin_k²)`` is at least ``threshold`` times the largest."""
    norms = torch.from_numpy(embedding_norms(W_E, basis)["embedding_freq_norm"])
    return [int(k) + 1 for k in torch.nonzero(norms >= threshold * norms.max()).flatten()]
