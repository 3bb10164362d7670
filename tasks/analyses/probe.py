"""One checkpoint's inputs to every analysis: its weights and, on demand, one forward pass
over the full p² probe with a filtered activation cache."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tasks.config import RunConfig
from tasks.data import full_probe, split
from tasks.fast import FastForward, applies
from tasks.model import HOOK_PATTERN, HOOK_POST, weights

FAST_HOOKS = {HOOK_POST, HOOK_PATTERN}


def _at_equals(hook: str, acts: torch.Tensor) -> torch.Tensor:
    """The activations at the '=' position (the last): attention patterns are
    (batch, head, query_pos, key_pos), so '=' is the last query; everything else is
    (batch, pos, ...)."""
    return acts[:, :, -1] if hook.endswith("hook_pattern") else acts[:, -1]


@dataclass
class Probe:
    """``weights``: TransformerLens-named weights (see ``tasks.model.weights``);
    ``acts(hook)``: that hook's activations at the ``=`` position over all p² inputs in a-major
    order, shape (p², ...); ``logits()``: (p², p) at ``=``. One forward serves them all."""

    cfg: RunConfig
    model: torch.nn.Module
    hooks: tuple[str, ...]
    weights: dict[str, torch.Tensor] = field(init=False)
    _cache: dict[str, torch.Tensor] | None = field(default=None, init=False)
    _logits: torch.Tensor | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.weights = weights(self.model)
        self.train_idx, self.test_idx = split(self.cfg.p, self.cfg.frac_train, self.cfg.data_seed)

    @property
    def p(self) -> int:
        return self.cfg.p

    def _forward(self, extra: str | None = None) -> None:
        wanted = set(self.hooks) | ({extra} if extra else set())
        if applies(self.cfg) and wanted <= FAST_HOOKS:
            self._fast_forward()
            return
        with torch.no_grad():
            logits, cache = self.model.run_with_cache(
                full_probe(self.p).to(self.weights["W_E"].device), names_filter=lambda n: n in wanted
            )
        self._logits = logits[:, -1].cpu()
        self._cache = {name: _at_equals(name, cache[name]).cpu() for name in wanted}

    def _fast_forward(self) -> None:
        """The same values through the exact last-position forward (``tasks.fast``; equality
        with the TransformerLens hooks is tested): one position instead of three."""
        probe = full_probe(self.p).to(self.weights["W_E"].device)
        with torch.no_grad():
            logits, pattern, post = FastForward(self.model, self.cfg).run(probe[:, :2])
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
