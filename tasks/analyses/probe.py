"""One checkpoint's inputs to every analysis: its weights and, on demand, one forward pass
over the full p² probe with a filtered activation cache."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tasks.config import RunConfig
from tasks.data import full_probe
from tasks.model import weights


@dataclass
class Probe:
    """``weights``: TransformerLens-named weights (see ``tasks.model.weights``);
    ``acts(hook)``: that hook's activations at the ``=`` position over all p² inputs in a-major
    order, shape (p², ...), computed once for all requested hooks."""

    cfg: RunConfig
    model: torch.nn.Module
    hooks: tuple[str, ...]
    weights: dict[str, torch.Tensor] = field(init=False)
    _cache: dict[str, torch.Tensor] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.weights = weights(self.model)

    @property
    def p(self) -> int:
        return self.cfg.p

    def acts(self, hook: str) -> torch.Tensor:
        if self._cache is None:
            wanted = set(self.hooks) | {hook}
            with torch.no_grad():
                _, cache = self.model.run_with_cache(
                    full_probe(self.p).to(self.weights["W_E"].device), names_filter=lambda n: n in wanted
                )
            self._cache = {name: cache[name][:, -1].cpu() for name in wanted}
        return self._cache[hook]
