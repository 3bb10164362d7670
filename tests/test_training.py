import math

import numpy as np
import pytest
import torch

from store import layout
from tests.same_run import assert_same_run
from store.run_store import open_run
from tasks import data
from tasks.config import preset
from tasks.fast import FastForward
from tasks.model import build_model
from tasks.runs import RunError, prepare_run, train_run
from tasks.training import loss_and_accuracy, make_optimizer, train


def test_float64_loss_goes_below_float32_floor():
    logits = torch.tensor([[20.0, 0.0, 0.0]])  # float32 logits, as the model returns them
    loss, acc = loss_and_accuracy(logits, torch.tensor([0]))
    expected = math.log1p(2 * math.exp(-20))  # 4.1e-9
    assert loss.dtype == torch.float64 and acc.item() == 1.0
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    in_float32 = torch.nn.functional.cross_entropy(logits, torch.tensor([0])).item()
    assert in_float32 != pytest.approx(expected, rel=1e-2)  # what float32 would have recorded


def test_initial_loss_is_ln_p_and_series_conventions():
    cfg = preset("smoke", num_epochs=30, checkpoint_epochs=(0, 10))
    model = build_model(cfg)
    seen = []
    series = train(cfg, model, make_optimizer(model, cfg),
                   on_checkpoint=lambda e, m, o, s: seen.append((e, s.train_loss[e])))
    assert abs(series.train_loss[0] - math.log(cfg.p)) < 0.1
    assert abs(series.test_loss[0] - math.log(cfg.p)) < 0.1
    assert [e for e, _ in seen] == [0, 10, 29]
    assert not np.isnan(series.train_loss).any() and series.train_loss[-1] < series.train_loss[0]


@pytest.mark.parametrize("task", ["mul", "x3+xy"])
def test_a_task_is_learned_from_its_own_data(task):
    """mul (pairs of units, in log order) and x3+xy memorise their own training labels as
    addition does (100% train accuracy by epoch 60 at p = 31), and the answers learned are the
    task's, not addition's."""
    cfg = preset("smoke", task=task, num_epochs=80, checkpoint_epochs=(0,))
    model = build_model(cfg)
    series = train(cfg, model, make_optimizer(model, cfg), compile_mode="off")
    assert series.train_acc[-1] == 1.0 and series.train_loss[-1] < 0.1
    x, y = data.full_probe(cfg), data.labels(cfg)
    train_idx, _ = data.split(cfg)
    with torch.no_grad():
        guess = FastForward(model, cfg).logits(x[train_idx, :2]).argmax(-1)
    assert torch.equal(guess, y[train_idx])
    assert (guess == (x[train_idx, 0] + x[train_idx, 1]) % cfg.p).double().mean() < 0.2


def test_test_split_evaluated_every_n_and_at_checkpoints():
    cfg = preset("smoke", num_epochs=30, checkpoint_epochs=(7,), test_every=10)
    model = build_model(cfg)
    s = train(cfg, model, make_optimizer(model, cfg))
    assert np.flatnonzero(~np.isnan(s.test_loss)).tolist() == [0, 7, 10, 20, 29]


class Interrupt(Exception):
    pass


@pytest.mark.slow  # trains twice
def test_resume_after_interruption_is_bit_identical(tmp_path):
    cfg = preset("smoke", num_epochs=80, checkpoint_epochs=(0, 20, 40, 60))
    straight = str(tmp_path / "a")
    prepare_run(straight, cfg)
    train_run(straight, cfg, device="cpu")

    resumed = str(tmp_path / "b")
    prepare_run(resumed, cfg)

    def stop_after_40(epoch):
        if epoch == 40:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(resumed, cfg, device="cpu", on_checkpoint=stop_after_40)
    train_run(resumed, cfg, device="cpu")

    assert_same_run(straight, resumed, cfg.run_id)


@pytest.mark.slow  # trains twice
def test_extend_keeps_checkpoints_and_refuses_shortening(tmp_path):
    root = str(tmp_path)
    cfg = preset("smoke", num_epochs=40, checkpoint_epochs=(0, 20))
    prepare_run(root, cfg)
    train_run(root, cfg, device="cpu")
    first = open(layout.checkpoint_path(root, cfg.run_id, 20), "rb").read()
    longer = prepare_run(root, cfg.replace(num_epochs=60, checkpoint_epochs=(0, 20, 50)))
    assert longer.checkpoint_epochs == (0, 20, 39, 50, 59)
    train_run(root, longer, device="cpu")
    assert open(layout.checkpoint_path(root, cfg.run_id, 20), "rb").read() == first
    st = open_run(root, cfg.run_id)
    assert st.epochs.tolist() == [0, 20, 39, 50, 59] and not np.isnan(st.series()["train_loss"]).any()
    with pytest.raises(RunError, match="cannot be shortened"):
        prepare_run(root, cfg.replace(num_epochs=30))
