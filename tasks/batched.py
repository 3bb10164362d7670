"""K runs of one shape trained together in one process: their weights stacked on a leading
axis, the fast forward vmapped over it, one optimiser over the stacks.

For a GPU, where one small run leaves the device mostly idle: K seeds cost about what one
does (``bench/batched_seeds.py``). Runs may differ in model seed and data seed (each keeps its
own seeded initialisation and split); everything else must match. AdamW is elementwise, so one
optimiser over stacked weights makes each run's update from its own gradient and moments;
the summed loss gives each slice exactly its own run's gradient. ``tests/test_batched.py``
shows the batched runs follow their separate trainings.
"""

from __future__ import annotations

import torch
from torch.func import vmap

from tasks import data
from tasks.config import ConfigError, RunConfig
from tasks.fast import FastForward, applies, forward_at_eq
from tasks.model import build_model
from tasks.training import adamw, loss_and_accuracy


def _check_batchable(cfgs: list[RunConfig]) -> None:
    if not cfgs:
        raise ConfigError("no runs to batch")
    shared = [dict(c.identity(), seed=0, data_seed=0, num_epochs=c.num_epochs) for c in cfgs]
    if any(s != shared[0] for s in shared):
        raise ConfigError("batched runs may differ only in seed and data_seed")
    if not applies(cfgs[0]):
        raise ConfigError("batched training needs the fast forward (1 layer, no LayerNorm)")


class BatchedRuns:
    """The stacked weights (``FastForward.weights`` order, each ``(K, ...)``), their optimiser
    and each run's split. ``step()`` trains every run one epoch; ``evaluate(split)`` gives the
    per-run ``(loss, accuracy)``, shapes ``(K,)``."""

    def __init__(self, cfgs: list[RunConfig], device: str | torch.device = "cpu", compiled: bool = False):
        _check_batchable(cfgs)
        self.cfgs, cfg = cfgs, cfgs[0]
        models = [build_model(c, device) for c in cfgs]  # each run's own seeded construction
        per_run = [FastForward(m, c).weights for m, c in zip(models, cfgs)]
        self.weights = [torch.nn.Parameter(torch.stack([w[i].detach() for w in per_run]))
                        for i in range(len(per_run[0]))]
        self.static = FastForward(models[0], cfg).static
        self.optimizer = adamw(self.weights, cfg)
        probe, targets = data.full_probe(cfg.p).to(device), data.labels(cfg.p).to(device)
        splits = [data.split(cfg.p, cfg.frac_train, c.data_seed) for c in cfgs]
        self.x = {name: torch.stack([probe[s[i].to(device)][:, :2] for s in splits]) for i, name in enumerate(("train", "test"))}
        self.y = {name: torch.stack([targets[s[i].to(device)] for s in splits]) for i, name in enumerate(("train", "test"))}
        loss = vmap(self._one, in_dims=(0, 0, 0))
        self._loss = torch.compile(loss, dynamic=False) if compiled else loss

    def _one(self, weights, x, y):
        return loss_and_accuracy(forward_at_eq(tuple(weights), x, *self.static)[0], y)

    def evaluate(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss(self.weights, self.x[split], self.y[split])

    def step(self) -> torch.Tensor:
        """One optimiser step of every run; returns the per-run train losses before it."""
        losses, _ = self.evaluate("train")
        losses.sum().backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return losses.detach()

    def run_weights(self, k: int) -> tuple[torch.Tensor, ...]:
        """Run ``k``'s weights (views into the stacks)."""
        return tuple(w[k] for w in self.weights)
