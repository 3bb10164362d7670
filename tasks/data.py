"""The modular-addition task: the full p² probe, its labels, the operand grid its rows enumerate
and a seeded train/test split. Training and every analysis read the task from here (analyses
through ``tasks.analyses.probe.Probe``), never re-derive it."""

from __future__ import annotations

import torch


def full_probe(p: int) -> torch.Tensor:
    """All p² inputs ``[a, b, =]`` in a-major order (row = a*p + b); shape (p², 3), int64."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    eq = torch.full_like(a, p)
    return torch.stack([a, b, eq], dim=1)


def labels(p: int) -> torch.Tensor:
    """``(a + b) mod p`` for every probe row; shape (p²,), int64."""
    probe = full_probe(p)
    return (probe[:, 0] + probe[:, 1]) % p


def operand_grid(p: int) -> dict[str, torch.Tensor]:
    """The operands the probe's rows enumerate, outermost first, with their values: row
    ``a*p + b`` is ``(a, b)``, so per-row values reshape to (a, b) = (p, p)."""
    return {"a": torch.arange(p), "b": torch.arange(p)}


def split(p: int, frac_train: float, data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe row indices of the train and test sets, each sorted; no global RNG is touched."""
    g = torch.Generator().manual_seed(data_seed)
    perm = torch.randperm(p * p, generator=g)
    n_train = int(frac_train * p * p)  # floor: p=113, 0.3 -> 3,830 train pairs
    return perm[:n_train].sort().values, perm[n_train:].sort().values
