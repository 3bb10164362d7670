"""Accuracy and the progress measures of the logits over the full probe (Nanda et al. 2023;
REFERENCE.md), in the run's basis.

Logits are held as (rows, c) in probe order, float64, with the probe's labels (rows,) and each
label's position s in the basis (0 .. n-1; for addition ``s = (a + b) mod p``, for
multiplication ``s = i + j mod p-1`` with ``a = g^i``, ``b = g^j``). Frequency k is
``w_k = 2 pi k / n``. The key-frequency terms of class c's logit map are ``cos(w_k s)`` and
``sin(w_k s)`` (``cos/sin(w_k(a+b))`` for addition, ``cos/sin(w_k(a-b))`` for subtraction);
their coefficients come from ``z_k[c] = sum_s Lbar[s, c] e^{-i w_k s}`` with ``Lbar`` the logits
summed per answer and rescaled to the mean count ``rows/n`` (equal counts, as for every group
task, make the rescaling exactly 1); their projection depends on the answer only:
``P_k[s, c] = (2/rows) Re(z_k[c] e^{i w_k s})``, ``1/rows`` for the even-n top frequency n/2
(its sine is zero). No (k, n, n, c) cube is ever built. The labels are read, never re-derived:
a task whose answer is another function of (a, b) is measured against its own answers. Classes
outside the basis (0 for mul and div: never an answer) are left as they are.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tasks.analyses.probe import Probe
from tasks.problems.basis import Basis


def _diagonal_dft(logits: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    """``z_k[c] = sum_s Lbar[s, c] e^{-i w_k s}`` for k = 1 .. n//2, ``Lbar`` the logits summed
    per answer position s and scaled to the mean count per answer: a 1-D DFT over the answers.
    For addition these are the (k, k) entries of the 2-D DFT over (a, b). ``logits``: (rows, c);
    ``positions``: (rows,) in 0 .. n-1; returns (freq, c), complex."""
    if len(positions) and int(positions.min()) < 0:
        raise ValueError("an answer outside the basis has no Fourier position")
    by_answer = torch.zeros(n, logits.shape[1], dtype=logits.dtype).index_add_(0, positions, logits)  # (s, c)
    count = torch.bincount(positions, minlength=n).to(logits.dtype)
    by_answer *= torch.where(count > 0, (len(positions) / n) / count.clamp_min(1), 0.0)[:, None]
    return torch.fft.fft(by_answer, dim=0)[1:n // 2 + 1]


def _top_scale(n: int, freqs: torch.Tensor) -> torch.Tensor:
    """The projection's factor per frequency: 2, or 1 for the even-n top frequency n/2 (a cos
    row alone, of squared norm n rather than n/2)."""
    return torch.where(2 * freqs == n, 1.0, 2.0).double()


def _answer_components(logits: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    """``(freq, s, c)``: the projection of each class's logit map onto the span of
    ``cos(w_k s), sin(w_k s)`` (s the answer's position), indexed by the answer, k = 1 .. n//2."""
    rows = logits.shape[0]
    z = _diagonal_dft(logits, positions, n)  # (freq, c)
    k = torch.arange(1, n // 2 + 1)
    s = torch.arange(n, dtype=torch.float64)
    phase = torch.exp(1j * 2 * math.pi * k[:, None].double() * s[None, :] / n)  # (freq, s)
    scale = _top_scale(n, k) / rows
    return scale[:, None, None] * (z[:, None, :] * phase[:, :, None]).real  # (freq, s, c)


def _ce(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor) -> float:
    return F.cross_entropy(logits[rows], targets[rows]).item()


def progress_measures(probe: Probe, key_freqs: list[int]) -> dict[str, np.ndarray]:
    """The progress measures of the probe's logits against its labels and split."""
    return progress_from_logits(probe.logits(), probe.labels, probe.label_positions, probe.basis,
                                key_freqs, probe.train_idx, probe.test_idx)


def progress_from_logits(logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor, basis: Basis,
                         key_freqs: list[int], train_idx: torch.Tensor, test_idx: torch.Tensor) -> dict[str, np.ndarray]:
    """``logits`` (rows, c) at '=', ``labels`` (rows,) and their basis ``positions`` (rows,) in
    probe order; ``key_freqs`` in 1 .. n//2.

    restricted_loss (split: train, test, all): loss of the logits reduced to, per class, the
    constant plus the key frequencies' ``cos/sin(w_k s)`` components (s the answer's position).
    excluded_loss: train loss with exactly those components removed (no re-centring);
    excluded_loss_by_freq (freq): the same with one key frequency removed (NaN elsewhere).
    logit_periodicity: fraction of the centred logits' variance along ``cos(w_k(s - s_c))``.
    Classes outside the basis keep their logits in all of them.
    """
    rows = logits.shape[0]
    L = logits.double()
    every = torch.arange(rows)
    inside = torch.from_numpy(basis.position(np.arange(L.shape[1])) >= 0)  # (c,)
    comps = _answer_components(L, positions, basis.n) * inside  # (freq, s, c)
    keys = torch.tensor([k - 1 for k in key_freqs], dtype=torch.long)
    const = L.mean(dim=0, keepdim=True)  # (1, c): the constant term over the rows
    key_part = comps[keys].sum(0)[positions]  # (rows, c): row r holds its answer's terms
    restricted = torch.where(inside, const + key_part, L)
    excluded = L - key_part
    s_train, y_train = positions[train_idx], labels[train_idx]
    L_train = L[train_idx]
    by_freq = np.full(len(comps), np.nan)  # NaN: not a key frequency
    for k in key_freqs:
        by_freq[k - 1] = F.cross_entropy(L_train - comps[k - 1][s_train], y_train).item()
    return {
        "restricted_loss": np.array([_ce(restricted, labels, rows) for rows in (train_idx, test_idx, every)]),
        "excluded_loss": np.array(_ce(excluded, labels, train_idx)),
        "excluded_loss_by_freq": by_freq,
        "logit_periodicity": np.array(logit_periodicity(L[:, list(basis.values)], positions, key_freqs)),
    }


def logit_periodicity(logits: torch.Tensor, positions: torch.Tensor, key_freqs: list[int],
                      centre: bool = True) -> float:
    """Fraction of the (centred over c) logit variance explained by ``cos(w_k(s - c))`` for
    ``k`` in ``key_freqs``. ``logits``: (rows, n), the classes in basis order (column c is the
    class at basis position c); ``positions`` (rows,): each row's answer position s (``a + b``
    for addition), rows/n rows per answer. Each direction has squared norm ``rows n / 2``
    (``rows n`` for the even-n top frequency); ``<L, cos(w(s-c))> = Re sum_c z_k[c] e^{i w c}``.
    The ideal one-hot logits give ``2m/(n-1)`` centred and ``2m/n`` uncentred for m
    frequencies below n/2."""
    rows, n = logits.shape
    L = logits.double()
    if centre:
        L = L - L.mean(dim=1, keepdim=True)
    total = L.pow(2).sum().item()
    if total == 0:
        return 0.0
    z = _diagonal_dft(L, positions, n)  # (freq, c)
    c = torch.arange(n, dtype=torch.float64)
    explained = 0.0
    for k in key_freqs:
        inner = (z[k - 1] * torch.exp(1j * 2 * math.pi * k * c / n)).real.sum().item()
        explained += inner**2 / (rows * n / 2 if 2 * k != n else rows * n)
    return explained / total


def accuracy(probe: Probe) -> dict[str, np.ndarray]:
    """The accuracy of the probe's logits against its labels, per split and class."""
    return accuracy_from_logits(probe.logits(), probe.labels, probe.train_idx, probe.test_idx)


def accuracy_from_logits(logits: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor,
                         test_idx: torch.Tensor) -> dict[str, np.ndarray]:
    """``logits`` (rows, c) and ``labels`` (rows,) in probe order. checkpoint_accuracy (split:
    train, test, all) and class_accuracy (split, c): accuracy among the rows whose answer is c,
    for every class token c; NaN where a split has no row of that class (every split, for a
    class that is never an answer: 0 for mul and div)."""
    n, p = logits.shape
    correct = (logits.argmax(-1) == labels).double()
    overall, per_class = [], []
    for rows in (train_idx, test_idx, torch.arange(n)):
        overall.append(correct[rows].mean().item())
        hits = torch.zeros(p, dtype=torch.float64).index_add_(0, labels[rows], correct[rows])
        count = torch.bincount(labels[rows], minlength=p).double()
        per_class.append(torch.where(count > 0, hits / count.clamp_min(1), torch.nan).numpy())
    return {"checkpoint_accuracy": np.array(overall), "class_accuracy": np.stack(per_class)}
