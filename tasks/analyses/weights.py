"""Analyses of the weights alone: sparsity in the run's Fourier basis (Gini), the unembedding
path ``W_L = W_out @ W_U`` per neuron, weight norms, and effective dimensionality. Basis
transforms read the operand tokens' rows of W_E and the classes' columns of W_U in basis order
(``basis.values``)."""

from __future__ import annotations

import numpy as np
import torch

from store.schema import MATRICES, PARAMS
from tasks.analyses.fourier import basis_matrix, per_frequency
from tasks.analyses.probe import Probe
from tasks.problems.basis import Basis


def gini(values: torch.Tensor) -> float:
    """Hurley & Rickard: ``1 - 2 sum_j (n_(j)/||n||_1) (N - j + 1/2)/N``, n sorted ascending,
    j = 1..N. One-hot gives ``1 - 1/N``, uniform gives 0, all zeros 0."""
    n = values.double().abs().flatten().sort().values
    total = n.sum()
    if total == 0:
        return 0.0
    N = len(n)
    j = torch.arange(1, N + 1, dtype=torch.float64)
    return (1 - 2 * ((n / total) * (N - j + 0.5) / N).sum()).item()


def participation_ratio(matrix: torch.Tensor) -> float:
    """Effective dimensionality ``(sum s²)² / sum s⁴`` of the singular values (1 .. rank)."""
    s2 = torch.linalg.svdvals(matrix.double()).pow(2)
    return (s2.sum() ** 2 / s2.pow(2).sum()).item() if s2.sum() > 0 else 0.0


def wl_spectrum(W_out: torch.Tensor, W_U: torch.Tensor, basis: Basis) -> torch.Tensor:
    """Per-neuron norms of the basis transform of ``W_L = W_out @ W_U`` along the logit axis,
    over the classes in basis order (a class outside the basis, 0 for mul and div, is left
    out): (neuron, component)."""
    W_L = W_out.double() @ W_U.double()[:, list(basis.values)]  # (neuron, c in basis order)
    return (W_L @ basis_matrix(basis, torch.float64).T).abs()  # (neuron, component)


def weight_measures(probe: Probe) -> dict[str, np.ndarray]:
    """``measures_from_weights`` of the checkpoint's weights."""
    return measures_from_weights({k: v.cpu() for k, v in probe.weights.items()}, probe.basis)


def measures_from_weights(w: dict[str, torch.Tensor], basis: Basis) -> dict[str, np.ndarray]:
    """``w``: TransformerLens-named weights. Returns gini_embedding, gini_wl, wl_freq_norm
    (neuron, freq), sum_sq_weights (param), sum_sq_weights_total, participation_ratio (matrix);
    W_E's participation ratio is over the operand tokens' rows."""
    W_E = w["W_E"][list(basis.values)]  # (n, d_model): the operand tokens in basis order
    coeffs = basis_matrix(basis, torch.float64) @ W_E.double()  # (component, d_model)
    wl = wl_spectrum(w["W_out"], w["W_U"], basis)  # (neuron, component)
    sq = np.array([w[name].double().pow(2).sum().item() for name in PARAMS])
    mats = {"W_E": W_E, "W_in": w["W_in"], "W_out": w["W_out"]}
    return {
        "gini_embedding": np.array(gini(coeffs.norm(dim=1))),
        "gini_wl": np.array(gini(wl.pow(2).sum(0).sqrt())),  # norm over neurons, per component
        "wl_freq_norm": per_frequency(wl, basis).float().numpy(),
        "sum_sq_weights": sq,
        "sum_sq_weights_total": np.array(sq.sum()),
        "participation_ratio": np.array([participation_ratio(mats[m]) for m in MATRICES]),
    }
