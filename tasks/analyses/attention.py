"""Attention from the '=' position: where each head looks, and at which frequency."""

from __future__ import annotations

import numpy as np
import torch

from tasks.analyses.fourier import neuron_freq_fraction


def attention_measures(pattern: torch.Tensor, p: int) -> dict[str, np.ndarray]:
    """``pattern`` (p², head, key_pos) from '=' in probe order. Returns attention_mean
    (head, position: a, b, =), attention_to_a (head, a, b), and head_freq_fraction
    (head, freq): the Fourier variance fractions of each head's attention-to-a map."""
    to_a = pattern[:, :, 0].T.reshape(-1, p, p).float()  # (head, a, b)
    return {
        "attention_mean": pattern.mean(dim=0).float().numpy(),
        "attention_to_a": to_a.numpy(),
        "head_freq_fraction": neuron_freq_fraction(to_a, p),
    }
