"""A run's data: the full probe of its task (every operand pair), the labels, the operand grid
the probe's rows enumerate and a seeded train/test split. Training and every analysis read the
task from here (analyses through ``tasks.analyses.probe.Probe``), never re-derive it.

The rows enumerate the task's operand values in basis order (``Problem.operands``), a-major:
row ``i*n + j`` holds ``a = values[i]``, ``b = values[j]``, with n = p for add, sub and the
polynomials (values 0 .. p-1, so addition's rows are ``a*p + b``) and n = p - 1 for mul and div
(values ``g^0 .. g^(p-2)`` mod p, in discrete-log order)."""

from __future__ import annotations

import torch

from tasks import problems
from tasks.config import RunConfig


def operands(cfg: RunConfig) -> torch.Tensor:
    """The values each operand takes, as tokens in basis order; shape (n,), int64."""
    return torch.tensor(problems.get(cfg.task).operands(cfg.p), dtype=torch.int64)


def operand_grid(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The operands the probe's rows enumerate, outermost first, with their values
    (:func:`operands`): per-row values reshape to (a, b) = (n, n)."""
    values = operands(cfg)
    return {"a": values, "b": values}


def full_probe(cfg: RunConfig) -> torch.Tensor:
    """Every input ``[a, b, =]`` (``=`` is token p), a-major over the operands' values; shape
    (n², 3), int64."""
    values = operands(cfg)
    a, b = values.repeat_interleave(len(values)), values.repeat(len(values))
    return torch.stack([a, b, torch.full_like(a, cfg.p)], dim=1)


def labels(cfg: RunConfig) -> torch.Tensor:
    """The answer's token for every probe row (``(a + b) mod p`` for add ...); shape (n²,), int64."""
    probe = full_probe(cfg)
    return torch.from_numpy(problems.get(cfg.task).label(probe[:, 0].numpy(), probe[:, 1].numpy(), cfg.p))


def split(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe row indices of the train and test sets (``cfg.frac_train`` of the n² rows, floored,
    drawn with ``cfg.data_seed``), each sorted; no global RNG is touched."""
    n = len(operands(cfg))
    g = torch.Generator().manual_seed(cfg.data_seed)
    perm = torch.randperm(n * n, generator=g)
    n_train = int(cfg.frac_train * n * n)  # floor: p=113, 0.3 -> 3,830 train pairs
    return perm[:n_train].sort().values, perm[n_train:].sort().values
