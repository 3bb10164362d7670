"""Any MLP width, end to end: a knob of ``tdw run``/``tdw train`` and of the Train form, and a
model of a width that is no multiple of the activations' 16-neuron inner chunks trained,
analysed and shown (the store's side: ``test_store.py``, ``test_direct_read.py``)."""

import numpy as np
import pytest

from viz import data
from viz.viewer import App


@pytest.mark.slow  # trains and analyses a run
def test_a_model_whose_width_is_no_multiple_of_16_neurons_is_analysed_and_shown(tmp_path):
    """d_mlp = 100: the activations' epoch shards hold 7 inner chunks of 16 neurons, the last
    one padded (``store.run_store``); the last neuron's map is the model's."""
    from tasks.config import preset
    from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run, train_run

    cfg = prepare_run(str(tmp_path), preset("smoke", d_mlp=100))
    epochs = []
    train_run(str(tmp_path), cfg, device="cpu", on_checkpoint=epochs.append)
    choose_key_frequencies(str(tmp_path), cfg.run_id)
    for epoch in epochs:
        analyze_epoch(str(tmp_path), cfg.run_id, epoch)
    view = App(str(tmp_path)).view
    view.neuron.value = 99
    stored = data.epoch_slice(str(tmp_path), cfg.run_id, "neuron_activations", epochs[-1], 0, 99).astype(np.float32)
    assert stored.shape == (31, 31) and np.isfinite(stored).all() and stored.any()
    np.testing.assert_array_equal(np.asarray(view.views["neuron_heatmap"].source.data["image"][0]), stored)
    assert len(view.views["neuron_frequencies"].order) == 100


def test_the_mlp_width_is_a_knob_of_its_own_run():
    """``--d-mlp`` changes the model (and so the run id) and nothing else."""
    from cli.main import _config, parser

    default = _config(parser().parse_args(["run", "--preset", "smoke"]))
    narrow = _config(parser().parse_args(["train", "--preset", "smoke", "--d-mlp", "100"]))
    assert default.model.d_mlp == 512 and narrow.model.d_mlp == 100
    assert narrow.run_id != default.run_id
    assert narrow.to_dict() | {"model": None} == default.to_dict() | {"model": None}


def test_the_train_form_has_a_width_field():
    from cli.main import parser
    from viz import train

    cfg, changed, errors = train.parse("smoke", {"d_mlp": "0"})
    assert cfg is None and "d_mlp" in errors["d_mlp"]
    cfg, changed, errors = train.parse("smoke", {"d_mlp": "100", "seed": "999"})  # 999: the preset's seed
    assert not errors and changed == {"d_mlp": 100} and cfg.model.d_mlp == 100
    assert parser().parse_args(train.command("/runs", "smoke", changed)[3:]).d_mlp == 100
    page = train.TrainPage("/runs", lambda run_id: None)
    assert page.inputs["d_mlp"].value == "512" and page.inputs["seed"].value == "999"  # the preset's values
