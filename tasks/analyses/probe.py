"""One checkpoint's inputs to every analysis, and the one place analyses read the task from: the
task's problem and analysis basis (``tasks.problems``), the probe's inputs, labels, operand grid
and split (built by ``tasks.data``), the checkpoint's weights and, on demand, one forward pass
over the full probe with a filtered activation cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from tasks import data, problems
from tasks.config import RunConfig
from tasks.fast import FastForward, applies
from tasks.model import HOOK_PATTERN, HOOK_POST, weights
from tasks.problems import Problem
from tasks.problems.basis import Basis

FAST_HOOKS = {HOOK_POST, HOOK_PATTERN}


def _at_equals(hook: str, acts: torch.Tensor) -> torch.Tensor:
    """The activations at the '=' position (the last): attention patterns are
    (batch, head, query_pos, key_pos), so '=' is the last query; everything else is
    (batch, pos, ...)."""
    return acts[:, :, -1] if hook.endswith("hook_pattern") else acts[:, -1]


@dataclass
class Probe:
    """Rows are the task's full probe: every operand pair in basis order, a-major (row i*n + j
    is ``a = basis.values[i]``, ``b = basis.values[j]``). ``problem`` and ``basis``: the task
    and the basis its Fourier analyses use; ``inputs`` (rows, 3) and ``labels`` (rows,): the
    task's data (the answer's token); ``label_positions`` (rows,): each answer's position in the
    basis; ``grid``: the operands the rows enumerate (``{"a": values, "b": values}``), and
    ``on_grid`` lays per-row values out on it; ``train_idx``, ``test_idx``:
    the run's split as row indices; ``weights``: TransformerLens-named weights (see
    ``tasks.model.weights``); ``acts(hook)``: that hook's activations at ``=``, shape (n, ...);
    ``logits()``: (n, classes) at ``=``. One forward serves them all."""

    cfg: RunConfig
    model: torch.nn.Module
    hooks: tuple[str, ...]
    _cache: dict[str, torch.Tensor] | None = field(default=None, init=False)
    _logits: torch.Tensor | None = field(default=None, init=False)

    @property
    def p(self) -> int:
        return self.cfg.p

    @cached_property
    def problem(self) -> Problem:
        return problems.get(self.cfg.task)

    @cached_property
    def basis(self) -> Basis:
        return self.problem.basis(self.p)

    @cached_property
    def weights(self) -> dict[str, torch.Tensor]:
        return weights(self.model)

    @cached_property
    def inputs(self) -> torch.Tensor:
        return data.full_probe(self.cfg)

    @cached_property
    def labels(self) -> torch.Tensor:
        return data.labels(self.cfg)

    @cached_property
    def label_positions(self) -> torch.Tensor:
        """(rows,) int64: the basis position of each row's answer (``i + j mod n`` for add and
        mul); -1 for an answer outside the basis."""
        return torch.from_numpy(self.basis.position(self.labels.numpy()))

    @cached_property
    def grid(self) -> dict[str, torch.Tensor]:
        return data.operand_grid(self.cfg)

    def on_grid(self, values: torch.Tensor) -> torch.Tensor:
        """``(n, k)`` in row order -> ``(k, *grid)``, e.g. each neuron's (a, b) map."""
        return values.T.reshape(-1, *(len(axis) for axis in self.grid.values()))

    @cached_property
    def _split(self) -> tuple[torch.Tensor, torch.Tensor]:
        return data.split(self.cfg)

    @property
    def train_idx(self) -> torch.Tensor:
        return self._split[0]

    @property
    def test_idx(self) -> torch.Tensor:
        return self._split[1]

    def _forward(self, extra: str | None = None) -> None:
        wanted = set(self.hooks) | ({extra} if extra else set())
        if applies(self.cfg) and wanted <= FAST_HOOKS:
            self._fast_forward()
            return
        with torch.no_grad():
            logits, cache = self.model.run_with_cache(
                self.inputs.to(self.weights["W_E"].device), names_filter=lambda n: n in wanted
            )
        self._logits = logits[:, -1].cpu()
        self._cache = {name: _at_equals(name, cache[name]).cpu() for name in wanted}

    def _fast_forward(self) -> None:
        """The same values through the exact last-position forward (``tasks.fast``; equality
        with the TransformerLens hooks is tested): one position instead of three."""
        pairs = self.inputs[:, :2].to(self.weights["W_E"].device)
        with torch.no_grad():
            logits, pattern, post = FastForward(self.model, self.cfg).run(pairs)
        self._logits = logits.cpu()
        self._cache = {HOOK_PATTERN: pattern.cpu(), HOOK_POST: post.cpu()}

    def acts(self, hook: str) -> torch.Tensor:
        if self._cache is None or hook not in self._cache:
            self._forward(hook)
        return self._cache[hook]

    def logits(self) -> torch.Tensor:
        if self._logits is None:
            self._forward()
        return self._logits
