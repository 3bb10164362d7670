"""Attention from the '=' position: where each head looks, and at which frequency."""

from __future__ import annotations

import numpy as np
import torch

from tasks.analyses.fourier import neuron_freq_fraction
from tasks.analyses.probe import Probe
from tasks.model import ATTN_PATTERN
from tasks.problems.basis import Basis


def attention(probe: Probe) -> dict[str, np.ndarray]:
    """``attention_measures`` of each layer's attention patterns from '=', stacked along a
    leading layer axis: attention_mean (layer, head, position), attention_to_a (layer, head, a,
    b), head_freq_fraction (layer, head, freq)."""
    per_layer = []
    for layer in range(probe.n_layers):
        pattern = probe.layer_acts(ATTN_PATTERN, layer)  # (n, head, key_pos)
        per_layer.append(attention_measures(pattern, probe.on_grid(pattern[:, :, 0]), probe.basis))
    return {name: np.stack([m[name] for m in per_layer]) for name in per_layer[0]}


def attention_measures(pattern: torch.Tensor, to_a: torch.Tensor, basis: Basis) -> dict[str, np.ndarray]:
    """``pattern`` (rows, head, key_pos) from '=' in probe order; ``to_a`` (head, a, b): its
    attention to the a token on the operand grid (basis order). Returns attention_mean (head,
    position: a, b, =), attention_to_a (head, a, b), and head_freq_fraction (head, freq): the
    variance fractions of each head's attention-to-a map in the run's basis."""
    to_a = to_a.float()
    return {
        "attention_mean": pattern.mean(dim=0).float().numpy(),
        "attention_to_a": to_a.numpy(),
        "head_freq_fraction": neuron_freq_fraction(to_a, basis),
    }
