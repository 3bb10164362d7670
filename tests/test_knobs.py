"""Knobs declared once (``tasks.knobs.KNOBS``): every row is an option of ``tdw run``/``train``
and ``sweep``, a parameter of the pipeline and sweep flows (as Prefect reads them), a field of
the Train page when it has a label, and sets its config field; the LayerNorm switch ``--ln`` is
one such row."""

import inspect

import pytest

from cli.main import _config, parser
from tasks.config import ConfigError, preset
from tasks.knobs import AXES, KNOBS, build_config, grid

# a value other than the smoke preset's for every knob, as an option's text and as the config has it
OTHER = {"p": ("13", 13), "task": ("mul", "mul"), "seed": ("7", 7), "data_seed": ("8", 8), "frac_train": ("0.5", 0.5),
         "num_epochs": ("60", 60), "lr": ("0.002", 2e-3), "weight_decay": ("0.5", 0.5),
         "checkpoints": ("0,10,20", (0, 10, 20, 59)), "d_mlp": ("100", 100), "ln": (None, "LN"),
         "n_layers": ("2", 2), "n_heads": ("2", 2), "d_model": ("64", 64), "d_head": ("16", 16),
         "act_fn": ("gelu", "gelu"), "init": ("native", "native"), "state_every": ("100", 100),
         "schedule": ("adaptive", "adaptive"), "checkpoints_max": ("10", 10)}


def _field(cfg, path):
    owner, _, name = path.rpartition(".")
    return getattr(cfg.model if owner else cfg, name)


def test_the_table_covers_every_knob_with_a_value_to_try():
    assert set(OTHER) == {k.name for k in KNOBS}


@pytest.mark.parametrize("knob", KNOBS, ids=[k.name for k in KNOBS])
def test_each_knob_is_an_option_of_run_train_and_sweep_that_sets_its_config_field(knob):
    text, expected = OTHER[knob.name]
    argv = [knob.flag] if text is None else [knob.flag, text]
    base = preset("smoke")
    extra = ["--epochs", "60"] if knob.name == "checkpoints" else []  # epochs past the last checkpoint
    for command in ("run", "train"):
        cfg = _config(parser().parse_args([command, "--preset", "smoke", *argv, *extra]))
        assert _field(cfg, knob.path) == expected != _field(base, knob.path)
        assert (cfg.run_id != base.run_id) == knob.identity  # extent knobs keep the id
        again = parser().parse_args([command, "--preset", "smoke", *knob.argv(knob.value(cfg)), *extra])
        assert _config(again) == cfg  # argv: the option that gives the knob's value back
    sweep = parser().parse_args(["sweep", "--preset", "smoke", *(
        [f"--{knob.axis.replace('_', '-')}", text] if knob.axis else argv), *extra])
    (cfg,) = grid("smoke", **{name: getattr(sweep, name) for name in (*AXES, *(
        k.name for k in KNOBS if not k.axis))})
    assert _field(cfg, knob.path) == expected


def test_flow_parameters_are_the_knobs_as_prefect_reads_them():
    from flows.pipeline import pipeline
    from flows.sweep import sweep_flow

    names = [k.name for k in KNOBS]
    pipeline_params = list(inspect.signature(pipeline.fn).parameters)
    assert pipeline_params[:len(names) + 1] == ["preset", *names]
    assert {"runs_dir", "device", "threads", "scheduler", "compile_mode"} <= set(pipeline_params)
    schema = pipeline.parameters.model_dump()["properties"]
    assert schema["d_mlp"]["description"].startswith("MLP width") and schema["ln"]["default"] is None
    # what `prefect deployment run -p ln=true -p checkpoints=[0,5]` sends, cast as the flow runs it
    cast = pipeline.validate_parameters({"preset": "smoke", "ln": "true", "checkpoints": ["0", "5"], "p": "13"})
    assert (cast["ln"], cast["checkpoints"], cast["p"], cast["seed"]) == (True, [0, 5], 13, None)
    assert build_config(**{k: cast[k] for k in ("preset", *names)}).model.normalization_type == "LN"

    sweep_params = set(inspect.signature(sweep_flow.fn).parameters)
    assert set(AXES) <= sweep_params and {k.name for k in KNOBS if not k.axis} <= sweep_params
    assert not {k.name for k in KNOBS if k.axis} & sweep_params  # an axis is a list, by its own name
    assert sweep_flow.validate_parameters({"seeds": ["1", "2"], "ln": True})["seeds"] == [1, 2]


def test_the_train_page_shows_the_labelled_knobs_and_starts_tdw_with_their_flags():
    from viz import train

    assert list(train.FIELDS) == [k.name for k in KNOBS if k.label]
    texts = {name: (True if knob.kind is bool else OTHER[name][0]) for name, knob in train.FIELDS.items()}
    cfg, changed, errors = train.parse("smoke", texts)
    assert not errors and set(changed) == set(train.FIELDS)
    args = parser().parse_args(train.command("/runs", "smoke", changed)[3:])
    assert _config(args) == cfg and cfg.model.normalization_type == "LN"
    page = train.TrainPage("/runs", lambda run_id: None)
    assert page.inputs["ln"].value is False  # the preset's: no LayerNorm
    page.inputs["ln"].value = True
    assert page.check()[1] == {"ln": True}


def test_ln_is_a_switch_both_ways():
    ln = _config(parser().parse_args(["run", "--preset", "smoke", "--ln", "--init", "native"]))
    assert ln.model.normalization_type == "LN" and ln.run_id == "p31-s999-d598-11422a05"  # test_run_ids
    assert _config(parser().parse_args(["run", "--preset", "smoke", "--no-ln"])) == preset("smoke")
    assert build_config("smoke", ln=False, d_mlp=None) == preset("smoke")


def test_unknown_knobs_are_refused():
    from tasks.config import ConfigError

    with pytest.raises(ConfigError, match="unknown knobs: width"):
        build_config("smoke", width=3)


@pytest.mark.slow
def test_a_layernorm_run_trains_and_is_analysed(tmp_path):
    """A LayerNorm run trains through the fast forward (the weights it reads include LayerNorm's)."""
    from tasks.fast import FastForward
    from tasks.model import build_model
    from tasks.runs import analyze_epoch, choose_key_frequencies, pending_epochs, prepare_run, train_run

    root = str(tmp_path)
    cfg = prepare_run(root, build_config("smoke", ln=True, num_epochs=30, checkpoints=[0, 15]))
    assert sum(w.dim() == 1 for w in FastForward(build_model(cfg), cfg).weights) == 3  # ln1, ln2, ln_final
    epochs = []
    series = train_run(root, cfg, device="cpu", on_checkpoint=epochs.append)
    assert series.train_loss[-1] < series.train_loss[0]
    choose_key_frequencies(root, cfg.run_id)
    for epoch in epochs:
        analyze_epoch(root, cfg.run_id, epoch)
    assert epochs == [0, 15, 29] and pending_epochs(root, cfg.run_id) == []  # every analysis current


def test_flow_run_names_are_built_from_tasks_alone():
    """flows/names.py imports no other flow (it imported flows.pipeline, which imports
    flows/train.py, which imports flows/names.py: a cycle)."""
    import ast
    from pathlib import Path

    import flows.names

    tree = ast.parse(Path(flows.names.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.split(".")[0] == "flows"}


def test_options_give_a_run_back_its_id():
    from tasks.config import RunConfig
    from tasks.knobs import options

    for cfg in (preset("canonical", seed=2, init="native"), preset("quick", p=113, d_mlp=100),
                preset("smoke", task="mul", frac_train=0.5, normalization_type="LN")):
        argv = options(cfg)
        assert _config(parser().parse_args(["train", *argv])).run_id == cfg.run_id
    assert options(preset("canonical", seed=2, init="native")) == ["--preset", "canonical", "--seed", "2", "--init", "native"]
    assert options(RunConfig(betas=(0.9, 0.99))) == []  # no knob sets the betas


def test_a_model_too_large_for_the_memory_is_refused_before_anything_is_built(monkeypatch):
    """build_config compares the config's estimated training memory with what the machine has:
    deeper and wider models at a larger p need more, and one byte too few is refused."""
    from tasks import config

    small, deep = build_config("smoke"), build_config("smoke", n_layers=3, d_model=256, p=97)
    assert config.training_bytes(deep) > 10 * config.training_bytes(small)
    monkeypatch.setattr(config, "available_bytes", lambda: config.training_bytes(deep))
    assert build_config("smoke", n_layers=3, d_model=256, p=97) == deep
    monkeypatch.setattr(config, "available_bytes", lambda: config.training_bytes(deep) - 1)
    with pytest.raises(ConfigError, match=r"model too large for this machine's memory at p=97: .* GiB available"):
        build_config("smoke", n_layers=3, d_model=256, p=97)
