"""Progress measures from the logits over the full probe (Nanda et al. 2023; REFERENCE.md).

Logits are ``L[a, b, c]``, held as (p², c) in probe order, float64. For output class c, the
components ``cos(w_k(a+b))`` and ``sin(w_k(a+b))`` of ``L[:, :, c]`` come from the (k, k) entries
of its 2-D DFT over (a, b), ``z_k[c] = sum_ab L[a,b,c] e^{-i w_k (a+b)}``, which is a 1-D DFT of
the sums along ``s = a + b``. Their projection depends on
``s = (a + b) mod p`` only: ``P_k[s, c] = (2/p²) Re(z_k[c] e^{i w_k s})``. No (k, p, p, p) cube
is ever built.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _diagonal_dft(logits: torch.Tensor) -> torch.Tensor:
    """``z_k[c] = sum_ab L[a, b, c] e^{-i w_k (a+b)}`` for k = 1 .. (p-1)/2: the (k, k) entries
    of the 2-D DFT over (a, b), from a 1-D DFT of the sums along ``s = (a+b) mod p``.
    ``logits``: (p², c) in probe order; returns (freq, c), complex."""
    n, c = logits.shape
    p = round(n ** 0.5)
    s = (torch.arange(n) // p + torch.arange(n) % p) % p
    by_sum = torch.zeros(p, c, dtype=logits.dtype).index_add_(0, s, logits)  # (s, c)
    return torch.fft.fft(by_sum, dim=0)[1:(p - 1) // 2 + 1]


def _sum_components(logits: torch.Tensor) -> torch.Tensor:
    """``(freq, s, c)``: the projection of each class's logit map onto the span of
    ``cos(w_k(a+b)), sin(w_k(a+b))``, indexed by ``s = (a+b) mod p``, for k = 1 .. (p-1)/2."""
    p = logits.shape[1]
    z = _diagonal_dft(logits)  # (freq, c)
    k = torch.arange(1, (p - 1) // 2 + 1)
    s = torch.arange(p, dtype=torch.float64)
    phase = torch.exp(1j * 2 * math.pi * k[:, None].double() * s[None, :] / p)  # (freq, s)
    return (2 / p**2) * (z[:, None, :] * phase[:, :, None]).real  # (freq, s, c)


def _by_pair(table: torch.Tensor, p: int) -> torch.Tensor:
    """``(s, c) -> (p², c)`` in a-major probe order: row a*p + b holds ``table[(a+b) % p]``."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return table[(a + b) % p]


def _ce(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor) -> float:
    return F.cross_entropy(logits[rows], targets[rows]).item()


def progress_measures(logits: torch.Tensor, key_freqs: list[int], train_idx: torch.Tensor,
                      test_idx: torch.Tensor) -> dict[str, np.ndarray]:
    """``logits`` (p², p) at '=' in probe order; ``key_freqs`` in 1 .. (p-1)/2.

    restricted_loss (split: train, test, all): loss of the logits reduced to, per class, the
    constant plus the key frequencies' ``cos/sin(w_k(a+b))`` components.
    excluded_loss: train loss with exactly those components removed (no re-centring);
    excluded_loss_by_freq (freq): the same with one key frequency removed (NaN elsewhere).
    logit_periodicity: fraction of the centred logits' variance along ``cos(w_k(a+b-c))``, k keys.
    """
    n = logits.shape[0]
    p = logits.shape[1]
    L = logits.double()
    targets = (torch.arange(n) // p + torch.arange(n) % p) % p
    every = torch.arange(n)
    comps = _sum_components(L)  # (freq, s, c)
    keys = torch.tensor([k - 1 for k in key_freqs], dtype=torch.long)
    const = L.mean(dim=0, keepdim=True)  # (1, c): the constant term over (a, b)
    key_part = _by_pair(comps[keys].sum(0), p)  # (p², c)
    restricted = const + key_part
    excluded = L - key_part
    s_train = (train_idx // p + train_idx % p) % p
    L_train, t_train = L[train_idx], targets[train_idx]
    by_freq = np.full(len(comps), np.nan)  # NaN: not a key frequency
    for k in key_freqs:
        by_freq[k - 1] = F.cross_entropy(L_train - comps[k - 1][s_train], t_train).item()
    return {
        "restricted_loss": np.array([_ce(restricted, targets, rows) for rows in (train_idx, test_idx, every)]),
        "excluded_loss": np.array(_ce(excluded, targets, train_idx)),
        "excluded_loss_by_freq": by_freq,
        "logit_periodicity": np.array(logit_periodicity(L, key_freqs)),
    }


def logit_periodicity(logits: torch.Tensor, key_freqs: list[int], centre: bool = True) -> float:
    """Fraction of the (centred over c) logit variance explained by ``cos(w_k(a+b-c))`` for
    ``k`` in ``key_freqs``. ``logits``: (p², c) in probe order. Each direction has squared norm
    ``p³/2``; ``<L, cos(w(a+b-c))> = Re sum_c z_k[c] e^{i w c}``. The ideal one-hot logits give
    ``2m/(p-1)`` centred and ``2m/p`` uncentred for m frequencies."""
    p = logits.shape[1]
    L = logits.double()
    if centre:
        L = L - L.mean(dim=1, keepdim=True)
    total = L.pow(2).sum().item()
    if total == 0:
        return 0.0
    z = _diagonal_dft(L)  # (freq, c)
    c = torch.arange(p, dtype=torch.float64)
    explained = 0.0
    for k in key_freqs:
        inner = (z[k - 1] * torch.exp(1j * 2 * math.pi * k * c / p)).real.sum().item()
        explained += inner**2 / (p**3 / 2)
    return explained / total


def accuracy(logits: torch.Tensor, train_idx: torch.Tensor, test_idx: torch.Tensor) -> dict[str, np.ndarray]:
    """checkpoint_accuracy (split: train, test, all) and class_accuracy (split, c): accuracy
    per target residue class; NaN where a split has no pair of that class."""
    n, p = logits.shape
    targets = (torch.arange(n) // p + torch.arange(n) % p) % p
    correct = (logits.argmax(-1) == targets).double()
    overall, per_class = [], []
    for rows in (train_idx, test_idx, torch.arange(n)):
        overall.append(correct[rows].mean().item())
        hits = torch.zeros(p, dtype=torch.float64).index_add_(0, targets[rows], correct[rows])
        count = torch.bincount(targets[rows], minlength=p).double()
        per_class.append(torch.where(count > 0, hits / count.clamp_min(1), torch.nan).numpy())
    return {"checkpoint_accuracy": np.array(overall), "class_accuracy": np.stack(per_class)}
