"""Zoom by replay (``tasks.zoom``): epochs inserted into a store read in epoch order, existing
data untouched; replayed checkpoints bit-identical to an uninterrupted run that had them in its
schedule; each fault a one-line message."""

import numpy as np
import pytest
import torch

from store import layout
from store.run_store import create_run, grow, open_run
from store.schema import Variable
from tasks import checkpoints as ckpt
from tasks import zoom
from tasks.config import preset
from tasks.lock import RunBusy, training_lock
from tasks.runs import analyze_epoch, analysis_to_do, prepare_run, train_run

SCHEDULE = (0, 40, 80)
VAR = Variable("x", ("epoch", "neuron"), "float32", "x", "a test variable")
DONE = Variable("x_done", ("epoch",), "int64", "x done", "the version stamp of x, per checkpoint")


def _smoke(root: str, epochs=SCHEDULE, state_every: int = 20):
    cfg = prepare_run(root, preset("smoke", num_epochs=81, checkpoint_epochs=epochs, state_every=state_every))
    train_run(root, cfg, device="cpu")
    return cfg


def _weights(root: str, run_id: str, epoch: int) -> dict[str, torch.Tensor]:
    return ckpt.read_checkpoint(layout.checkpoint_path(root, run_id, epoch))[0]


def _store(root: str, epochs=(0, 40, 80)):
    cfg = preset("smoke", num_epochs=81, checkpoint_epochs=epochs)
    dims = {"p": cfg.p, "d_mlp": 4, "n_heads": 1, "num_epochs": 81}
    return create_run(root, cfg.run_id, cfg.to_dict(), cfg.checkpoint_epochs, dims, (VAR, DONE)), cfg


def test_inserted_epochs_read_in_epoch_order_and_leave_written_ones_alone(tmp_path):
    store, cfg = _store(str(tmp_path))
    for e in (0, 40, 80):
        store.write_epoch("x", e, np.full(4, e, dtype="float32"))
        store.mark_done("x", e, "v1")
    before = store.read("x").copy()
    added = grow(store, cfg.replace(checkpoint_epochs=(0, 40, 50, 60, 80)).to_dict(), (0, 40, 50, 60, 80), 81)
    assert added == [50, 60]
    st = open_run(str(tmp_path), cfg.run_id)
    assert list(st.epochs) == [0, 40, 50, 60, 80]
    assert [st.index(e) for e in (0, 40, 80, 50, 60)] == [0, 1, 2, 3, 4]  # appended: nothing moved
    np.testing.assert_array_equal(st.read("x")[[0, 1, 4]], before)
    assert np.isnan(st.read("x")[[2, 3]]).all()
    assert list(st.done_mask("x")) == [True, True, False, False, True]
    st.write_epoch("x", 50, np.full(4, 50, dtype="float32"))
    st.mark_done("x", 50, "v1")
    assert list(st.done_mask("x", "v1")) == [True, True, True, False, True]
    np.testing.assert_array_equal(st.read("x")[:, 0], [0, 40, 50, np.nan, 80])
    assert list(st.read("epoch")) == [0, 40, 50, 60, 80]
    assert st.read("x", 50)[0] == 50
    assert open_run(str(tmp_path), cfg.run_id).config["checkpoint_epochs"] == [0, 40, 50, 60, 80]


def test_a_grow_killed_before_its_commit_point_reads_as_before_and_completes_when_run_again(tmp_path):
    store, cfg = _store(str(tmp_path))
    coord = store.group["epoch"]
    coord.resize((5,))
    coord[3:] = [50, 0]  # killed half-way through writing the coordinate, sizes not yet recorded
    st = open_run(str(tmp_path), cfg.run_id)
    assert list(st.epochs) == [0, 40, 80]
    assert grow(st, cfg.to_dict(), (0, 40, 50, 60, 80), 81) == [50, 60]
    assert list(open_run(str(tmp_path), cfg.run_id).epochs) == [0, 40, 50, 60, 80]


def test_zoomed_checkpoints_equal_those_of_a_run_trained_with_them_byte_for_byte(tmp_path):
    zoomed, straight = str(tmp_path / "zoomed"), str(tmp_path / "straight")
    cfg = _smoke(zoomed)
    reference = _smoke(straight, (0, 40, 50, 60, 80))
    assert reference.run_id == cfg.run_id  # the schedule is extent, not identity
    epochs = zoom.plan(cfg, zoom.trained_through(zoomed, cfg.run_id), 45, 65, every=5)
    assert epochs == [45, 50, 55, 60, 65]
    point = zoom.zoom(zoomed, cfg.run_id, [50, 60], device="cpu")
    assert (point.epoch, point.path is not None) == (40, True)  # the saved state at or before 50
    assert "saved state at epoch 40" in point.describe()
    for epoch in (50, 60):
        a, b = _weights(zoomed, cfg.run_id, epoch), _weights(straight, cfg.run_id, epoch)
        assert a.keys() == b.keys() and all(
            a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a), epoch
    for epoch in SCHEDULE:  # existing checkpoints untouched
        assert all(torch.equal(v, _weights(straight, cfg.run_id, epoch)[k])
                   for k, v in _weights(zoomed, cfg.run_id, epoch).items())
    st = open_run(zoomed, cfg.run_id)
    assert list(st.epochs) == [0, 40, 50, 60, 80]
    assert zoom.load_config(zoomed, cfg.run_id).checkpoint_epochs == (0, 40, 50, 60, 80)
    series = open_run(straight, cfg.run_id).series()
    np.testing.assert_array_equal(st.series()["train_loss"], series["train_loss"])
    assert zoom.zoom(zoomed, cfg.run_id, [50, 60], device="cpu") is None  # done already: nothing replayed


def test_the_analyses_fan_out_on_the_new_checkpoints_key_frequencies_included(tmp_path):
    root = str(tmp_path)
    cfg = _smoke(root)
    for epoch in analysis_to_do(root, cfg.run_id):
        analyze_epoch(root, cfg.run_id, epoch)
    assert analysis_to_do(root, cfg.run_id) == []
    zoom.zoom(root, cfg.run_id, [50, 60], device="cpu")
    assert analysis_to_do(root, cfg.run_id) == [50, 60]
    st = open_run(root, cfg.run_id)
    keyed = {name for name, needs in st.analyses().items() if needs}
    assert keyed  # analyses that wait for the key frequencies
    for epoch in (50, 60):
        assert keyed <= set(analyze_epoch(root, cfg.run_id, epoch))
    assert analysis_to_do(root, cfg.run_id) == []
    st = open_run(root, cfg.run_id)
    for name in st.analyses():
        assert st.done_mask(name).all(), name


def test_without_a_saved_state_it_replays_from_the_seeded_start_and_says_so(tmp_path):
    zoomed, straight = str(tmp_path / "zoomed"), str(tmp_path / "straight")
    cfg = _smoke(zoomed, state_every=0)
    _smoke(straight, (0, 40, 50, 80), state_every=0)
    point = zoom.zoom(zoomed, cfg.run_id, [50], device="cpu")
    assert point.path is None and "seeded start" in point.describe()
    a, b = _weights(zoomed, cfg.run_id, 50), _weights(straight, cfg.run_id, 50)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_state_is_passed_over_for_an_earlier_one(tmp_path):
    cfg = _smoke(str(tmp_path))
    path = layout.state_path(str(tmp_path), cfg.run_id, 40)
    with open(path, "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\xff" * 8)
    assert zoom.replay_point(str(tmp_path), cfg, 50).epoch == 20


@pytest.mark.parametrize("args, message", [
    (dict(start=60, stop=50, every=5), "--from 60 is after --to 50"),
    (dict(start=50, stop=200, every=5), "outside run"),
    (dict(start=-1, stop=20, every=5), "outside run"),
    (dict(start=50, stop=60, every=0), "--every must be a positive"),
    (dict(start=50, stop=60, every=-3), "--every must be a positive"),
    (dict(start=50, stop=60, count=0), "--count must be a positive"),
    (dict(start=50, stop=60), "give one of --every K or --count N"),
])
def test_bad_ranges_are_refused_in_one_line(args, message):
    cfg = preset("smoke", num_epochs=81, checkpoint_epochs=SCHEDULE)
    with pytest.raises(zoom.ZoomError, match=message) as err:
        zoom.plan(cfg, 80, **args)
    assert "\n" not in str(err.value)


def test_count_spreads_new_epochs_evenly_and_skips_existing_checkpoints():
    cfg = preset("smoke", num_epochs=81, checkpoint_epochs=SCHEDULE)
    assert zoom.plan(cfg, 80, 40, 80, count=3) == [50, 60, 70]
    assert zoom.plan(cfg, 80, 38, 42, count=10) == [38, 39, 41, 42]


def test_a_run_that_is_training_is_refused(tmp_path):
    cfg = _smoke(str(tmp_path))
    with training_lock(str(tmp_path), cfg.run_id):
        with pytest.raises(RunBusy, match="being trained by another process"):
            zoom.zoom(str(tmp_path), cfg.run_id, [50], device="cpu")


def test_a_replay_elsewhere_than_its_state_was_saved_says_it_is_not_bit_identical(tmp_path):
    root = str(tmp_path)
    cfg = _smoke(root)
    threads = torch.get_num_threads()
    assert ckpt.header(layout.state_path(root, cfg.run_id, 40))["where"] == ckpt.where(_model(cfg))
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=rf"state at epoch 40 was saved on cpu, {threads} thread.*; this replay "
                                             rf"runs on cpu, {threads + 1} threads: .* not bit-identical"):
            zoom.replay(root, cfg, [50], device="cpu")
    finally:
        torch.set_num_threads(threads)


def _model(cfg):
    from tasks.model import build_model

    return build_model(cfg)
