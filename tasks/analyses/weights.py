"""Analyses of the weights alone: sparsity in the run's Fourier basis (Gini), each layer's
unembedding path ``W_L = W_out @ W_U`` per neuron (the direct path of that layer's neurons to
the logits), weight norms, and effective dimensionality of each layer's matrices. Basis
transforms read the operand tokens' rows of W_E and the classes' columns of W_U in basis order
(``basis.values``)."""

from __future__ import annotations

import numpy as np
import torch

from store.schema import LAYER_MATRICES, PARAMS
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


def layer_matrices(w: dict[str, torch.Tensor], layer: int) -> dict[str, torch.Tensor]:
    """One layer's matrices as 2-D maps of the residual stream, heads side by side: W_Q, W_K,
    W_V (d_model, head·d_head), W_O (head·d_head, d_model), W_in (d_model, d_mlp), W_out
    (d_mlp, d_model)."""
    out = {name: w[name][layer].permute(1, 0, 2).flatten(1) for name in ("W_Q", "W_K", "W_V")}
    return {**out, "W_O": w["W_O"][layer].flatten(0, 1), "W_in": w["W_in"][layer], "W_out": w["W_out"][layer]}


def measures_from_weights(w: dict[str, torch.Tensor], basis: Basis) -> dict[str, np.ndarray]:
    """``w``: TransformerLens-named weights, block weights stacked over layers
    (``tasks.model.weights``). Returns gini_embedding, gini_wl (layer), wl_freq_norm (layer,
    neuron, freq), sum_sq_weights (param, summed over layers), sum_sq_weights_total,
    participation_ratio (layer, layer_matrix) and participation_ratio_embed (W_E over the
    operand tokens' rows)."""
    W_E = w["W_E"][list(basis.values)]  # (n, d_model): the operand tokens in basis order
    coeffs = basis_matrix(basis, torch.float64) @ W_E.double()  # (component, d_model)
    layers = range(len(w["W_out"]))
    wl = torch.stack([wl_spectrum(w["W_out"][layer], w["W_U"], basis) for layer in layers])  # (layer, neuron, component)
    sq = np.array([w[name].double().pow(2).sum().item() for name in PARAMS])
    return {
        "gini_embedding": np.array(gini(coeffs.norm(dim=1))),
        "gini_wl": np.array([gini(spectrum.pow(2).sum(0).sqrt()) for spectrum in wl]),  # norm over neurons
        "wl_freq_norm": per_frequency(wl, basis).float().numpy(),
        "sum_sq_weights": sq,
        "sum_sq_weights_total": np.array(sq.sum()),
        "participation_ratio": np.array([[participation_ratio(mats[m]) for m in LAYER_MATRICES]
                                         for mats in (layer_matrices(w, layer) for layer in layers)]),
        "participation_ratio_embed": np.array(participation_ratio(W_E)),
    }
