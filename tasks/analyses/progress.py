"""Accuracy and the progress measures of the logits over the full probe (Nanda et al. 2023;
REFERENCE.md).

Logits are held as (n, c) in probe order, float64, with the probe's labels (n,) giving each row's
answer ``s`` in 0 .. p-1 (for addition ``s = (a + b) mod p``). The key-frequency terms of class c's
logit map are ``cos(w_k s)`` and ``sin(w_k s)`` (``cos/sin(w_k(a+b))`` for addition); their
coefficients come from ``z_k[c] = sum_rows L[row, c] e^{-i w_k s(row)}``, a 1-D DFT of the logits
summed per answer, and their projection depends on the answer only:
``P_k[s, c] = (2/n) Re(z_k[c] e^{i w_k s})`` (each answer has n/p rows). No (k, p, p, p) cube is
ever built. The labels are read, never re-derived: a task whose answer is another function of
(a, b) is measured against its own answers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tasks.analyses.probe import Probe


def _diagonal_dft(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_k[c] = sum_rows L[row, c] e^{-i w_k s(row)}`` for k = 1 .. (p-1)/2, with ``s`` the
    row's label: a 1-D DFT of the logits summed per answer. For addition these are the (k, k)
    entries of the 2-D DFT over (a, b). ``logits``: (n, c); returns (freq, c), complex."""
    p = logits.shape[1]
    by_answer = torch.zeros(p, p, dtype=logits.dtype).index_add_(0, labels, logits)  # (s, c)
    return torch.fft.fft(by_answer, dim=0)[1:(p - 1) // 2 + 1]


def _answer_components(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(freq, s, c)``: the projection of each class's logit map onto the span of
    ``cos(w_k s), sin(w_k s)`` (s the answer), indexed by the answer, for k = 1 .. (p-1)/2."""
    n, p = logits.shape
    z = _diagonal_dft(logits, labels)  # (freq, c)
    k = torch.arange(1, (p - 1) // 2 + 1)
    s = torch.arange(p, dtype=torch.float64)
    phase = torch.exp(1j * 2 * math.pi * k[:, None].double() * s[None, :] / p)  # (freq, s)
    return (2 / n) * (z[:, None, :] * phase[:, :, None]).real  # (freq, s, c)


def _ce(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor) -> float:
    return F.cross_entropy(logits[rows], targets[rows]).item()


def progress_measures(probe: Probe, key_freqs: list[int]) -> dict[str, np.ndarray]:
    """The progress measures of the probe's logits against its labels and split."""
    return progress_from_logits(probe.logits(), probe.labels, key_freqs, probe.train_idx, probe.test_idx)


def progress_from_logits(logits: torch.Tensor, labels: torch.Tensor, key_freqs: list[int],
                         train_idx: torch.Tensor, test_idx: torch.Tensor) -> dict[str, np.ndarray]:
    """``logits`` (n, p) at '=' and ``labels`` (n,) in probe order; ``key_freqs`` in 1 .. (p-1)/2.

    restricted_loss (split: train, test, all): loss of the logits reduced to, per class, the
    constant plus the key frequencies' ``cos/sin(w_k s)`` components (s the answer).
    excluded_loss: train loss with exactly those components removed (no re-centring);
    excluded_loss_by_freq (freq): the same with one key frequency removed (NaN elsewhere).
    logit_periodicity: fraction of the centred logits' variance along ``cos(w_k(s - c))``, k keys.
    """
    n = logits.shape[0]
    L = logits.double()
    every = torch.arange(n)
    comps = _answer_components(L, labels)  # (freq, s, c)
    keys = torch.tensor([k - 1 for k in key_freqs], dtype=torch.long)
    const = L.mean(dim=0, keepdim=True)  # (1, c): the constant term over the rows
    key_part = comps[keys].sum(0)[labels]  # (n, c): row r holds its answer's terms
    restricted = const + key_part
    excluded = L - key_part
    s_train = labels[train_idx]
    L_train = L[train_idx]
    by_freq = np.full(len(comps), np.nan)  # NaN: not a key frequency
    for k in key_freqs:
        by_freq[k - 1] = F.cross_entropy(L_train - comps[k - 1][s_train], s_train).item()
    return {
        "restricted_loss": np.array([_ce(restricted, labels, rows) for rows in (train_idx, test_idx, every)]),
        "excluded_loss": np.array(_ce(excluded, labels, train_idx)),
        "excluded_loss_by_freq": by_freq,
        "logit_periodicity": np.array(logit_periodicity(L, labels, key_freqs)),
    }


def logit_periodicity(logits: torch.Tensor, labels: torch.Tensor, key_freqs: list[int],
                      centre: bool = True) -> float:
    """Fraction of the (centred over c) logit variance explained by ``cos(w_k(s - c))`` for
    ``k`` in ``key_freqs``, s the row's label (``a + b`` for addition). ``logits``: (n, c) and
    ``labels`` (n,) in probe order, n = p² rows, p/n of them per answer. Each direction has
    squared norm ``n p / 2``; ``<L, cos(w(s-c))> = Re sum_c z_k[c] e^{i w c}``. The ideal
    one-hot logits give ``2m/(p-1)`` centred and ``2m/p`` uncentred for m frequencies."""
    n, p = logits.shape
    L = logits.double()
    if centre:
        L = L - L.mean(dim=1, keepdim=True)
    total = L.pow(2).sum().item()
    if total == 0:
        return 0.0
    z = _diagonal_dft(L, labels)  # (freq, c)
    c = torch.arange(p, dtype=torch.float64)
    explained = 0.0
    for k in key_freqs:
        inner = (z[k - 1] * torch.exp(1j * 2 * math.pi * k * c / p)).real.sum().item()
        explained += inner**2 / (n * p / 2)
    return explained / total


def accuracy(probe: Probe) -> dict[str, np.ndarray]:
    """The accuracy of the probe's logits against its labels, per split and class."""
    return accuracy_from_logits(probe.logits(), probe.labels, probe.train_idx, probe.test_idx)


def accuracy_from_logits(logits: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor,
                         test_idx: torch.Tensor) -> dict[str, np.ndarray]:
    """``logits`` (n, c) and ``labels`` (n,) in probe order. checkpoint_accuracy (split: train,
    test, all) and class_accuracy (split, c): accuracy among the rows whose answer is c; NaN
    where a split has no row of that class."""
    n, p = logits.shape
    correct = (logits.argmax(-1) == labels).double()
    overall, per_class = [], []
    for rows in (train_idx, test_idx, torch.arange(n)):
        overall.append(correct[rows].mean().item())
        hits = torch.zeros(p, dtype=torch.float64).index_add_(0, labels[rows], correct[rows])
        count = torch.bincount(labels[rows], minlength=p).double()
        per_class.append(torch.where(count > 0, hits / count.clamp_min(1), torch.nan).numpy())
    return {"checkpoint_accuracy": np.array(overall), "class_accuracy": np.stack(per_class)}
