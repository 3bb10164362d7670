"""Runs trained together (stacked weights, vmapped fast forward) follow their separate
trainings: same initialisation, same per-run losses and weights to float32 rounding."""

import pytest

from tasks.batched import BatchedRuns
from tasks.config import ConfigError, preset
from tasks.fast import FastForward
from tasks.model import build_model
from tasks.training import make_optimizer, train


def _rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_batched_runs_follow_their_separate_trainings():
    """Weights after 5 steps, and losses at epochs 0, 1 and 19. Two float32 trainings that round
    differently drift apart later (Adam amplifies rounding: after 20 steps of this config either
    one is ~1e-3 from a float64 training), so the weights are compared before that."""
    cfgs = [preset("smoke", seed=s, data_seed=d, num_epochs=21, checkpoint_epochs=(0,))
            for s, d in ((1, 1), (2, 1), (3, 7))]
    batch = BatchedRuns(cfgs)
    batched_losses = [batch.step() for _ in range(5)]
    early = [[w.detach().clone() for w in batch.run_weights(k)] for k in range(len(cfgs))]
    batched_losses += [batch.step() for _ in range(15)]
    for k, cfg in enumerate(cfgs):
        model = build_model(cfg)
        opt = make_optimizer(model, cfg)
        series = train(cfg, model, opt, compile_mode="off", stop_epoch=5)
        for mine, theirs in zip(early[k], FastForward(model, cfg).weights):
            assert _rel(mine, theirs) < 1e-5
        series = train(cfg, model, opt, start_epoch=5, series=series, compile_mode="off")
        for epoch in (0, 1, 19):
            assert batched_losses[epoch][k].item() == pytest.approx(series.train_loss[epoch], rel=1e-5)


def test_only_seeds_may_differ():
    with pytest.raises(ConfigError, match="only in seed"):
        BatchedRuns([preset("smoke", seed=1), preset("smoke", seed=2, lr=1e-3)])
