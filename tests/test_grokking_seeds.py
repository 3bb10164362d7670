"""bench/grokking_seeds.py: the first epochs it records, how it resumes and what it prints."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("grokking_seeds", Path(__file__).parents[1] / "bench" / "grokking_seeds.py")
gs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gs)
CANON = ("legacy", "canonical", "")  # a record's setup: init, preset, variant


def _record(seed, first95, budget=20_000, stopped=True, init="legacy"):
    return {"init": init, "seed": seed, "budget": budget, "first": {"0.5": 100, "0.95": first95},
            "trained_to": first95 or budget - 1, "last_test_acc": 0.97 if first95 else 0.08,
            "stopped_early": stopped, "seconds": 1.0, "device": "cpu"}


def test_first_epochs_skip_unevaluated_epochs():
    acc = np.full(100, np.nan)
    acc[::10] = np.linspace(0, 1, 10)  # 0, 0.11, ..., 1 at epochs 0, 10, ..., 90
    assert gs.first_epochs(acc) == {"0.5": 50, "0.95": 90}
    assert gs.first_epochs(np.where(np.isnan(acc), np.nan, 0.1)) == {"0.5": None, "0.95": None}  # NaN never counts


def test_a_seed_is_done_once_reached_or_trained_as_far():
    records = [_record(1, 6_000), _record(2, None, budget=10_000, stopped=False)]
    assert gs.done(records, CANON, 1, 40_000)  # reached: no budget trains it again
    assert not gs.done(records, ("legacy", "canonical", "warmup"), 1, 20_000)  # another setup
    assert gs.done(records, CANON, 2, 10_000) and not gs.done(records, CANON, 2, 20_000)
    assert not gs.done(records, ("native", "canonical", ""), 1, 20_000) and not gs.done(records, CANON, 3, 20_000)
    assert gs.seeds_arg("1-3,7") == [1, 2, 3, 7]


def test_report_names_unreached_and_unfinished_seeds(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in
                           [_record(1, 6_000), _record(2, None, stopped=False), _record(3, 9_000), _record(4, 8_000)]))
    text = gs.report(gs.load(out), CANON, [1, 2, 3, 4, 5], 20_000)
    assert "seed 2: 100 / not by 20,000  (test accuracy 0.08 at 19,999" in text
    assert "seed 5: unfinished" in text
    # the unreached seed counts as later than every reached one: median_low of 6k, 8k, 9k, inf
    assert ">= 0.95: min 6,000, median 8,000, max not by 20,000 over 4 seeds (1 not by the budget)" in text
    assert "median 7,588" in text  # the published anchors beside it
    assert math.isinf(max(r["first"]["0.95"] or math.inf for r in gs.load(out)))
    assert "seed 1: unfinished" in gs.report(gs.load(out), ("legacy", "quick", ""), [1], 20_000)


def test_the_warmup_variant_ramps_the_learning_rate_only():
    import torch

    from tasks.config import preset
    from tasks.model import build_model, trainable
    from tasks.training import make_optimizer

    cfg = preset("smoke", seed=3)
    model = build_model(cfg)
    before = {n: p.detach().clone() for n, p in trainable(model).items()}
    optimizer = make_optimizer(model, cfg)
    gs.apply_variant("warmup", optimizer)
    assert all(torch.equal(before[n], p) for n, p in trainable(model).items())
    lrs = []  # lr 0 for the first step, then rising by lr/10 a step
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
    assert lrs[0] == 0 and lrs[1] == cfg.lr / 10 and lrs[10] == lrs[11] == cfg.lr
    with pytest.raises(ValueError, match="unknown variant"):
        gs.apply_variant("nanda-init", optimizer)


@pytest.mark.slow  # boots the canonical model and trains 30 epochs
def test_train_seed_records_the_budget_and_what_it_reached():
    record = gs.train_seed("native", 1, 30, "cpu")
    assert record["first"] == {"0.5": None, "0.95": None} and not record["stopped_early"]
    assert record["trained_to"] == 29 and 0 <= record["last_test_acc"] < 0.1 and record["budget"] == 30
