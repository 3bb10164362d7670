"""Run ids never move: the ids below were computed by the code that made the runs on disk.
A change that renames any of them orphans those runs (``load_config`` refuses a folder whose
config hashes to another id), so it must fail here first. A field added to the config with its
baseline (``tasks.config.IDENTITY_BASELINE``) leaves every id where it was."""

import dataclasses
from dataclasses import dataclass

import pytest

from tasks import config
from tasks.config import EXTENT, HASHED_ALWAYS, IDENTITY_BASELINE, ModelConfig, RunConfig, preset

# runs made before the init knob existed were initialised natively (its baseline); the knob's
# default, legacy, and the other schemes give new ids (WITH_INIT)
NATIVE = {"init": "native"}
GOLDEN = [
    (("smoke", NATIVE), "p31-s999-d598-b9a87a21"),
    (("quick", NATIVE), "p59-s999-d598-cb9097f2"),
    (("canonical", NATIVE), "p113-s999-d598-1381d6dd"),
    (("quick", {**NATIVE, "d_mlp": 100}), "p59-s999-d598-1db84ac5"),
    (("smoke", {**NATIVE, "d_mlp": 100}), "p31-s999-d598-578fcd74"),
    (("canonical", {**NATIVE, "lr": 3e-3}), "p113-s999-d598-84ebef8d"),
    (("quick", {**NATIVE, "frac_train": 0.5}), "p59-s999-d598-7c2d122d"),
    (("smoke", {**NATIVE, "normalization_type": "LN"}), "p31-s999-d598-11422a05"),
    (("canonical", {**NATIVE, "normalization_type": "LN"}), "p113-s999-d598-ed5639fe"),
    (("smoke", {**NATIVE, "seed": 1, "data_seed": 2, "weight_decay": 0.5}), "p31-s1-d2-0dbfdf07"),
    (("quick", {**NATIVE, "p": 113, "act_fn": "gelu"}), "p113-s999-d598-277d6b97"),
]
WITH_INIT = [
    (("smoke", {}), "p31-s999-d598-ceeb2040"),
    (("quick", {}), "p59-s999-d598-2dd09430"),
    (("canonical", {}), "p113-s999-d598-03418b17"),
    (("canonical", {"seed": 1}), "p113-s1-d598-be184331"),
    (("quick", {"init": "xavier_normal"}), "p59-s999-d598-6a15a84b"),
    (("canonical", {"init": "nanda"}), "p113-s999-d598-52af2db4"),
]


@pytest.mark.parametrize("spec,run_id", GOLDEN + WITH_INIT, ids=[i for _, i in GOLDEN + WITH_INIT])
def test_run_ids_are_pinned(spec, run_id):
    name, overrides = spec
    cfg = preset(name, **overrides)
    assert cfg.run_id == run_id
    assert cfg.replace(num_epochs=cfg.num_epochs + 7).run_id == run_id  # extent is not identity


def _paths(cls, prefix: str = ""):
    """Every field of ``cls`` by its config path ("lr", "model.d_mlp")."""
    for f in dataclasses.fields(cls):
        yield from _paths(ModelConfig, "model.") if f.name == "model" else [prefix + f.name]


def test_a_config_written_before_the_init_knob_loads_as_native_with_its_id():
    for (name, overrides), run_id in GOLDEN:
        d = preset(name, **overrides).to_dict()
        del d["model"]["init"]
        loaded = RunConfig.from_dict(d)
        assert (loaded.model.init, loaded.run_id) == ("native", run_id)
        assert RunConfig.from_json(loaded.to_json()) == loaded  # written back with the field, same run


def test_the_default_init_is_legacy_with_ids_of_its_own():
    assert preset("canonical").model.init == "legacy" and IDENTITY_BASELINE["model.init"] == "native"
    assert {i for _, i in GOLDEN}.isdisjoint(i for _, i in WITH_INIT)


def test_every_identity_field_is_hashed_always_or_has_a_baseline():
    """A field added to the config must record the value runs had before it (its baseline)."""
    assert set(_paths(RunConfig)) - set(EXTENT) == HASHED_ALWAYS | set(IDENTITY_BASELINE)
    assert not HASHED_ALWAYS & set(IDENTITY_BASELINE)


@dataclass(frozen=True)
class WiderModel(ModelConfig):
    positional: str = "learned"  # a model field added with a default


@dataclass(frozen=True)
class WiderRun(RunConfig):
    warmup: int = 0  # a run field added with a default


def _widened(cfg: RunConfig) -> WiderRun:
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(RunConfig)}
    return WiderRun(**fields | {"model": WiderModel(**dataclasses.asdict(cfg.model))})


def test_fields_added_with_their_baseline_rename_no_run(monkeypatch):
    monkeypatch.setattr(config, "IDENTITY_BASELINE", {**IDENTITY_BASELINE, "warmup": 0, "model.positional": "learned"})
    monkeypatch.setattr(config, "ModelConfig", WiderModel)  # what from_dict builds the model with
    for (name, overrides), run_id in GOLDEN:
        old = preset(name, **overrides)
        new = _widened(old)
        assert new.run_id == run_id
        assert new.replace(warmup=100).run_id != run_id  # away from the baseline: a new run
        assert new.replace(model=dataclasses.replace(new.model, positional="rotary")).run_id != run_id
        loaded = WiderRun.from_dict(old.to_dict())  # a config.json written before the fields existed
        assert (loaded.warmup, loaded.model.positional, loaded.run_id) == (0, "learned", run_id)


def test_without_a_baseline_a_new_field_would_rename_every_run(monkeypatch):
    monkeypatch.setattr(config, "IDENTITY_BASELINE", {})
    (name, overrides), run_id = GOLDEN[0]
    assert _widened(preset(name, **overrides)).run_id != run_id
