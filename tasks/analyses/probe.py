"""One checkpoint's inputs to every analysis, and the one place analyses read the task from: the
task's problem and analysis basis (``tasks.problems``), the probe's inputs, labels, operand grid
and split (built by ``tasks.data``), the checkpoint's weights and, on demand, one forward pass
over the full probe with a filtered activation cache. Hooks are full TransformerLens names
(``blocks.1.mlp.hook_post``); ``layer_acts`` resolves a block-relative one per layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from tasks import data, problems
from tasks.config import RunConfig
from tasks.fast import FastForward
from tasks.model import hook_name, weights
from tasks.problems import Problem
from tasks.problems.basis import Basis


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

    @property
    def n_layers(self) -> int:
        return self.cfg.model.n_layers

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
        """One forward for the logits and every hook wanted: the exact fast forward
        (``tasks.fast``: the '=' position alone; equality with the TransformerLens hooks is
        tested) when it yields them all, else TransformerLens's ``run_with_cache``."""
        wanted = set(self.hooks) | ({extra} if extra else set())
        pairs = self.inputs[:, :2].to(self.weights["W_E"].device)
        with torch.no_grad():
            logits, acts = FastForward(self.model, self.cfg).run(pairs)
        if wanted <= acts.keys():
            self._logits = logits.cpu()
            self._cache = {name: acts[name].cpu() for name in wanted}
            return
        with torch.no_grad():
            logits, cache = self.model.run_with_cache(
                self.inputs.to(self.weights["W_E"].device), names_filter=lambda n: n in wanted
            )
        self._logits = logits[:, -1].cpu()
        self._cache = {name: _at_equals(name, cache[name]).cpu() for name in wanted}

    def acts(self, hook: str) -> torch.Tensor:
        if self._cache is None or hook not in self._cache:
            self._forward(hook)
        return self._cache[hook]

    def layer_acts(self, hook: str, layer: int) -> torch.Tensor:
        """``acts`` of a block-relative hook (``mlp.hook_post``) in ``layer``."""
        return self.acts(hook_name(hook, layer))

    def resid_pre(self) -> torch.Tensor:
        """(d_model,): the residual stream at '=' before layer 0, the '=' token's embedding plus
        its position's; the same for every row."""
        w = self.weights
        return (w["W_E"][self.inputs[0, -1]] + w["W_pos"][self.inputs.shape[1] - 1]).cpu()

    def ln_final(self, resid: torch.Tensor) -> torch.Tensor:
        """(rows, d_model) -> the final LayerNorm's output in float64 (the input itself, in
        float64, when the model has none)."""
        x = resid.double()
        if "ln_final.w" not in self.weights:
            return x
        x = (x - x.mean(-1, keepdim=True)) / self.ln_scale(x)
        return x * self.weights["ln_final.w"].double().cpu() + self.weights["ln_final.b"].double().cpu()

    def ln_scale(self, resid: torch.Tensor) -> torch.Tensor:
        """(rows, 1) float64: the final LayerNorm's scale ``sqrt(var + eps)`` of each row (1
        without LayerNorm)."""
        if "ln_final.w" not in self.weights:
            return torch.ones(len(resid), 1, dtype=torch.float64)
        return (resid.double().var(-1, unbiased=False, keepdim=True) + self.model.cfg.eps).sqrt()

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """(rows, d_model) residual stream at '=' -> (rows, classes) float64 logits, through the
        final LayerNorm when the model has one: the logit lens of that stream."""
        return self.ln_final(resid) @ self.weights["W_U"].double().cpu()

    def logits(self) -> torch.Tensor:
        if self._logits is None:
            self._forward()
        return self._logits
