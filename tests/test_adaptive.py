"""The adaptive checkpoint schedule: the rule on synthetic trajectories with known answers, its
config, and a smoke run that is interrupted and resumed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from store import layout
from store.run_store import open_run
from tasks import adaptive, knobs
from tasks.adaptive import Rule
from tasks.config import ConfigError, RunConfig, preset
from tasks.runs import prepare_run, train_run
from tests.same_run import assert_same_run


def simulate(rule: Rule, loss, acc, position) -> list[tuple[int, str]]:
    """Run ``rule`` over a synthetic trajectory: per-epoch test loss, test accuracy and a 1-d
    parameter position (distance |x_e - x_c| / |x_c|). Returns ``(epoch, reason)`` per checkpoint."""
    out, used, last = [], 0, 0
    for e in range(rule.final + 1):
        if e % rule.every and e != rule.final:
            continue
        changes = (abs(adaptive.ln_loss(loss[e]) - adaptive.ln_loss(loss[last])), abs(acc[e] - acc[last]),
                   abs(position[e] - position[last]) / abs(position[last]))
        why = rule.decide(e, used, last, changes)
        if why:
            out.append((e, why))
            used, last = used + 1, e
    return out


def grokking(T: int = 2000, onset: int = 1000, width: float = 40.0):
    """Flat, then test accuracy 0 -> 1 and ln test loss 2 -> -10 around ``onset`` (a logistic of
    ``width`` epochs), parameters still: the transition is the only thing that moves."""
    e = np.arange(T)
    s = 1 / (1 + np.exp(-(e - onset) / width))
    return np.exp(2 - 12 * s), s, np.ones(T)


def test_budget_floor_and_forced_epochs_on_a_trajectory_that_always_moves():
    T, N = 999, 20
    rule = Rule(N, T, 1, adaptive.derived_floor(N, T, 1))
    e = np.arange(T + 1)
    taken = simulate(rule, np.exp(-e / 10.0), (e % 2).astype(float), 1.0 + e)
    epochs = [x for x, _ in taken]
    assert len(epochs) == N  # every checkpoint spent, never one more
    assert epochs[0] == 0 and epochs[-1] == T
    assert max(np.diff(epochs)) <= rule.floor
    assert epochs[-3:] == [rule.floor, 2 * rule.floor, T]  # the free budget spent at once, the floor's kept


def test_a_still_trajectory_gets_the_floor_only():
    T, N = 1000, 22
    rule = Rule(N, T, 10, adaptive.derived_floor(N, T, 10))
    assert rule.floor == 340  # (22 - 2) // 8 = 2 floor checkpoints -> T / 3, rounded up to the grid
    taken = simulate(rule, np.ones(T + 1), np.zeros(T + 1), np.ones(T + 1))
    assert taken == [(0, "forced"), (340, "floor"), (680, "floor"), (1000, "forced")]


def test_the_transition_gets_its_checkpoints_at_least_twice_as_densely():
    loss, acc, pos = grokking()
    rule = Rule(60, 1999, 5, adaptive.derived_floor(60, 1999, 5))
    epochs = np.array([x for x, _ in simulate(rule, loss, acc, pos)])
    lo, hi = np.flatnonzero(acc >= 0.1)[0], np.flatnonzero(acc >= 0.95)[0]
    inside = ((epochs >= lo) & (epochs <= hi)).sum() / (hi - lo + 1)
    assert inside >= 2 * len(epochs) / 2000
    assert len(epochs) <= 60


def test_reserve_and_scale():
    rule = Rule(budget=10, final=100, every=1, floor=30)
    assert rule.reserve(0) == 4 and rule.reserve(70) == 1 and rule.reserve(100) == 0
    assert rule.scale(0, 1) == 1.0  # F0 = 10 - 1 - 4 = 5 free, as planned
    assert rule.scale(50, 6) == pytest.approx(5 * 0.5 / (10 - 6 - 2))  # spent 5 of 5 by half-time
    assert rule.scale(50, 8) == math.inf  # nothing free: only the floor and the final are left
    assert rule.decide(50, 8, 40, (1e9, 1e9, 1e9)) is None
    assert rule.decide(70, 8, 40, (0.0, 0.0, 0.0)) == "floor"
    forced = Rule(10, 100, 1, 30, forced=(0, 60, 100))
    assert forced.reserve(0) == 5 and forced.decide(60, 3, 50, (0.0, 0.0, 0.0)) == "forced"


def test_nan_is_no_change():
    rule = Rule(10, 100, 1, 30)
    assert rule.decide(5, 1, 0, (math.nan, math.nan, math.nan)) is None
    assert rule.decide(5, 1, 0, (math.nan, 1.0, math.nan)) == "test accuracy"


def test_window():
    assert adaptive.window([math.nan, 0.05, 0.2, math.nan, 0.96, 0.99]) == (2, 4)
    assert adaptive.window([0.0, 0.5, 0.9]) is None


def test_config_fields_are_extent_derived_and_recorded():
    fixed, ad = preset("quick"), preset("quick", schedule="adaptive")
    assert ad.run_id == fixed.run_id
    assert (fixed.checkpoints_max, fixed.checkpoint_floor, fixed.schedule_thresholds) == (0, 0, ())
    assert ad.checkpoints_max == len(fixed.checkpoint_epochs) == 63
    assert ad.checkpoint_epochs == (0, 1999) and ad.checkpoint_floor % ad.test_every == 0
    saved = json.loads(ad.to_json())
    assert saved["schedule"] == "adaptive" and saved["schedule_thresholds"] == list(adaptive.THRESHOLDS)
    assert type(ad).from_json(ad.to_json()) == ad
    assert preset("canonical", schedule="adaptive").checkpoints_max == 95
    assert knobs.build_config("quick", schedule="adaptive", checkpoints_max=40).checkpoints_max == 40
    assert ad.replace(num_epochs=4000).checkpoints_max == len(preset("quick", num_epochs=4000).checkpoint_epochs)
    with pytest.raises(ConfigError, match="at least 2"):
        preset("quick", schedule="adaptive", checkpoints_max=1)
    # listed epochs past the budget (e.g. added by tdw zoom) stay checkpoints; the rule adds none
    zoomed = Rule.of(preset("quick", schedule="adaptive", checkpoints_max=3, checkpoint_epochs=(0, 5, 10, 15)))
    assert zoomed.decide(15, 3, 10, (0.0, 0.0, 0.0)) == "forced"
    assert zoomed.decide(20, 4, 15, (9.0, 9.0, 9.0)) is None and zoomed.decide(1000, 4, 15, (0.0,) * 3) is None
    with pytest.raises(ConfigError, match="schedule must be"):
        preset("quick", schedule="sometimes")


class Interrupt(Exception):
    pass


@pytest.mark.slow  # trains four times, 80-110 epochs
def test_an_interrupted_adaptive_run_checkpoints_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    cfg = preset("smoke", schedule="adaptive", checkpoints_max=9, num_epochs=80)
    straight = str(tmp_path / "a")
    train_run(straight, prepare_run(straight, cfg), device="cpu")
    epochs = [int(e) for e in open_run(straight, cfg.run_id).epochs]
    assert epochs[0] == 0 and epochs[-1] == 79 and 6 < len(epochs) <= 9
    saved = json.loads(open(layout.config_path(straight, cfg.run_id)).read())
    assert saved["checkpoint_epochs"] == epochs and open_run(straight, cfg.run_id).config == saved
    assert saved["checkpoint_floor"] == cfg.checkpoint_floor
    from viz.report import schedule_line
    line = schedule_line(straight, cfg.run_id, RunConfig.from_dict(saved))
    assert line.startswith(f"Checkpoints: {len(epochs)} of at most 9, adaptive")

    # killed after its fourth checkpoint's resume state, then killed between the sixth's place in
    # the store and its resume state: resumed each time, it decides the same epochs
    resumed = str(tmp_path / "b")
    prepare_run(resumed, cfg)

    def stop_at(epoch):
        if epoch == epochs[3]:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(resumed, cfg, device="cpu", on_checkpoint=stop_at)
    from tasks import checkpoints as ckpt
    real = ckpt.save_train_state

    def fail_at_sixth(path, optimizer, names, epoch, *rest):
        if epoch == epochs[5]:
            raise Interrupt
        real(path, optimizer, names, epoch, *rest)

    monkeypatch.setattr(ckpt, "save_train_state", fail_at_sixth)
    with pytest.raises(Interrupt):
        train_run(resumed, prepare_run(resumed, cfg), device="cpu")
    monkeypatch.setattr(ckpt, "save_train_state", real)
    train_run(resumed, prepare_run(resumed, cfg), device="cpu")
    assert [int(e) for e in open_run(resumed, cfg.run_id).epochs] == epochs
    assert_same_run(straight, resumed, cfg.run_id)

    # the same epochs without --schedule adaptive resume the run as it is; more epochs extend it,
    # its checkpoints kept, the rule going on (a larger budget: the old one is spent)
    assert prepare_run(straight, preset("smoke", num_epochs=80)).schedule == "adaptive"
    longer = prepare_run(straight, cfg.replace(num_epochs=110, checkpoints_max=13))
    train_run(straight, longer, device="cpu")
    grown = [int(e) for e in open_run(straight, cfg.run_id).epochs]
    assert grown[:len(epochs)] == epochs and grown[-1] == 109 and len(grown) <= 13


@pytest.mark.parametrize("argv", [["--schedule", "sometimes"], ["--checkpoints-max", "0"], ["--checkpoints-max", "x"]])
def test_bad_schedule_options_exit_2(argv, capsys):
    from cli.main import parser

    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["train", *argv])
    assert exit_.value.code == 2 and argv[0] in capsys.readouterr().err


def test_an_existing_run_keeps_its_schedule_and_state_interval_and_says_so(tmp_path):
    import warnings

    root = str(tmp_path)
    cfg = preset("smoke", schedule="adaptive", checkpoints_max=9, num_epochs=80)
    prepare_run(root, cfg)
    every = cfg.state_every
    with pytest.warns(UserWarning, match=rf"keeps its schedule adaptive \(asked fixed\), state_every {every} "
                                         rf"\(asked {every + 7}\): these change only when the run is extended"):
        kept = prepare_run(root, preset("smoke", num_epochs=80, state_every=every + 7))
    assert kept.schedule == "adaptive" and kept.state_every == every
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_run(root, cfg) == kept  # asked as created: nothing to say
