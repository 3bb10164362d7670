"""Run ids never move: the ids below were computed by the code that made the runs on disk.
A change that renames any of them orphans those runs (``load_config`` refuses a folder whose
config hashes to another id), so it must fail here first."""

import pytest

from tasks.config import preset

GOLDEN = [
    (("smoke", {}), "p31-s999-d598-b9a87a21"),
    (("quick", {}), "p59-s999-d598-cb9097f2"),
    (("canonical", {}), "p113-s999-d598-1381d6dd"),
    (("quick", {"d_mlp": 100}), "p59-s999-d598-1db84ac5"),
    (("smoke", {"d_mlp": 100}), "p31-s999-d598-578fcd74"),
    (("canonical", {"lr": 3e-3}), "p113-s999-d598-84ebef8d"),
    (("quick", {"frac_train": 0.5}), "p59-s999-d598-7c2d122d"),
    (("smoke", {"normalization_type": "LN"}), "p31-s999-d598-11422a05"),
    (("canonical", {"normalization_type": "LN"}), "p113-s999-d598-ed5639fe"),
    (("smoke", {"seed": 1, "data_seed": 2, "weight_decay": 0.5}), "p31-s1-d2-0dbfdf07"),
    (("quick", {"p": 113, "act_fn": "gelu"}), "p113-s999-d598-277d6b97"),
]


@pytest.mark.parametrize("spec,run_id", GOLDEN, ids=[i for _, i in GOLDEN])
def test_run_ids_are_pinned(spec, run_id):
    name, overrides = spec
    cfg = preset(name, **overrides)
    assert cfg.run_id == run_id
    assert cfg.replace(num_epochs=cfg.num_epochs + 7).run_id == run_id  # extent is not identity
