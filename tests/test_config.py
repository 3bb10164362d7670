import math

import pytest

from tasks.config import ConfigError, ModelConfig, PRESETS, RunConfig, canonical_schedule, preset


def test_canonical_defaults_match_the_paper():
    c = PRESETS["canonical"]
    assert (c.p, c.lr, c.weight_decay, c.betas, c.frac_train, c.num_epochs) == (113, 1e-3, 1.0, (0.9, 0.98), 0.3, 25_000)
    assert c.model == ModelConfig(n_layers=1, n_heads=4, d_model=128, d_head=32, d_mlp=512, act_fn="relu")
    assert (c.seed, c.data_seed) == (999, 598)
    assert c.checkpoint_epochs == canonical_schedule() and len(c.checkpoint_epochs) == 95
    assert c.checkpoint_epochs[:3] == (0, 100, 200) and c.checkpoint_epochs[-2:] == (24_500, 24_999)


@pytest.mark.parametrize("p", [1, 2, 4, 9, 15, -7, 0, 1_009])
def test_p_must_be_an_odd_prime(p):
    with pytest.raises(ConfigError, match="p"):
        RunConfig(p=p, num_epochs=10)


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, math.nan])
def test_fraction_strictly_inside_0_1(frac):
    with pytest.raises(ConfigError, match="frac_train"):
        RunConfig(frac_train=frac, num_epochs=10)


@pytest.mark.parametrize("epochs", [0, -5])
def test_epochs_positive(epochs):
    with pytest.raises(ConfigError, match="num_epochs"):
        RunConfig(num_epochs=epochs)


def test_schedule_sorted_deduplicated_final_epoch_added():
    c = RunConfig(p=31, num_epochs=100, checkpoint_epochs=(50, 10, 10, 0))
    assert c.checkpoint_epochs == (0, 10, 50, 99)


@pytest.mark.parametrize("bad", [(0, 100), (-1,), (1.5,), ("x",)])
def test_schedule_rejects_out_of_range_and_non_integers(bad):
    with pytest.raises(ConfigError, match="checkpoint epoch"):
        RunConfig(p=31, num_epochs=100, checkpoint_epochs=bad)


def test_run_id_names_p_seeds_and_hash_and_ignores_extent():
    a = RunConfig(p=59, num_epochs=100)
    assert a.run_id.startswith("p59-s999-d598-") and len(a.run_id.split("-")[-1]) == 8
    assert a.replace(num_epochs=500).run_id == a.run_id  # extending keeps the id
    assert a.replace(data_seed=1).run_id != a.run_id  # the data seed is part of the identity
    assert a.replace(lr=3e-3).run_id != a.run_id


def test_json_round_trip():
    c = preset("quick")
    assert RunConfig.from_json(c.to_json()) == c


def test_preset_overrides_and_unknown_preset():
    c = preset("quick", p=113, num_epochs=1000, d_mlp=256)
    assert (c.p, c.num_epochs, c.model.d_mlp, c.lr) == (113, 1000, 256, 6e-3)
    assert c.checkpoint_epochs[-1] == 999
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
