"""Bad input through the command line: one clear line on stderr, exit code 2, no traceback, and
nothing under the runs root created, changed or deleted."""

import json
import os
import shutil

import pytest

from cli.main import main
from store import layout


def _tree(root) -> dict:
    """Every file under ``root`` with its size and modification time."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            st = os.stat(path)
            out[path] = (st.st_size, st.st_mtime_ns)
    return out


def _refused(argv: list[str], message: str, capsys) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err, err


CASES = [
    (["run", "--p", "4"], "odd prime"),
    (["run", "--p", "9"], "odd prime"),
    (["run", "--p", "1"], "odd prime"),
    (["run", "--p", "-7"], "odd prime"),
    (["run", "--p", "1009"], "too large"),
    (["run", "--p", "x"], "invalid int value"),
    (["train", "--frac", "0"], "frac_train"),
    (["train", "--frac", "1"], "frac_train"),
    (["train", "--frac", "-0.3"], "frac_train"),
    (["train", "--frac", "nan"], "frac_train"),
    (["train", "--frac", "abc"], "invalid float value"),
    (["train", "--epochs", "0"], "num_epochs"),
    (["train", "--epochs", "-5"], "num_epochs"),
    (["run", "--checkpoints", "100,0"], "increasing"),
    (["run", "--checkpoints", "0,50,50"], "without repeats"),
    (["run", "--checkpoints", "0,1.5"], "integers"),
    (["run", "--epochs", "100", "--checkpoints", "0,500"], "outside"),
    (["run", "--lr", "-1"], "lr must be positive"),
    (["run", "--wd", "-0.1"], "weight_decay"),
    (["run", "--seed", "-1"], "seed must be a non-negative"),
    (["run", "--threads", "0"], "integer >= 1"),
    (["run", "--d-mlp", "0"], "integer >= 1"),
    (["run", "--layers", "0"], "integer >= 1"),
    (["run", "--layers", "-2"], "integer >= 1"),
    (["run", "--layers", "1.5"], "integer >= 1"),
    (["train", "--heads", "0"], "integer >= 1"),
    (["train", "--d-model", "-1"], "integer >= 1"),
    (["train", "--d-head", "x"], "integer >= 1"),
    (["run", "--act", "tanh"], "act_fn must be relu or gelu"),
    (["run", "--p", "997", "--layers", "3", "--d-mlp", "100000"], "too large for this machine's memory"),
    (["sweep", "--layers", "0"], "integer >= 1"),
    (["run", "--preset", "nope"], "unknown preset"),
    (["run", "--task", "nope"], "unknown task 'nope'; choose one of add, sub, mul, div, x2+y2, x2+xy+y2, x3+xy"),
    (["train", "--task", "mul", "--p", "3"], "fewer than 3 operand values"),
    (["sweep", "--tasks", "add,nope"], "unknown task 'nope'"),
    (["run", "--bogus", "1"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    (["analyze", "p31-s0-d0-deadbeef"], "unknown run id"),
    (["analyze", "../etc"], "invalid run id"),
    (["report", "/etc/passwd"], "invalid run id"),
    (["run", "--preset", "smoke", "--device", "cuda"], "no CUDA GPU"),
    (["run", "--preset", "smoke", "--device", "tpu:9"], "unknown device 'tpu:9'"),
    (["run", "--preset", "smoke", "--device", "mps"], "unknown device 'mps'"),
    (["sweep", "--seeds", "1,x"], "comma-separated list"),
    (["sweep", "--primes", "31,33"], "odd prime"),
    (["sweep", "--fracs", "0.3,2"], "frac_train"),
    (["sweep", "--concurrency", "0"], "integer >= 1"),
    (["sweep", "--d-mlp", "0"], "integer >= 1"),
    (["sweep", "--epochs", "0"], "num_epochs"),
    (["sweep", "--device", "tpu:9"], "unknown device 'tpu:9'"),
    (["run", "--ln", "1"], "unrecognized arguments"),
    (["train", "--device", "cuda:x"], "unknown device 'cuda:x'"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_argument_is_one_line_and_creates_nothing(argv, message, tmp_path, capsys):
    root = tmp_path / "runs"
    _refused([*argv, "--runs", str(root)] if argv[0] != "frobnicate" else argv, message, capsys)
    assert not root.exists()


def test_runs_root_that_is_a_file_or_not_writable(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _refused(["runs", "--runs", str(f)], "is a file", capsys)
    _refused(["run", "--preset", "smoke", "--runs", str(f / "runs")], "not writable", capsys)
    assert f.read_text() == "x"


@pytest.mark.parametrize("url,message", [("s3://", "not a valid bucket name"),
                                         ("s3://Bad_Bucket/runs", "not a valid bucket name"),
                                         ("nosuch://x/runs", "unknown storage protocol")])
def test_malformed_object_store_url(url, message, capsys):
    _refused(["runs", "--runs", url], message, capsys)


@pytest.fixture
def run_copy(smoke_run, tmp_path):
    """A private copy of the analysed smoke run: ``(root, cfg)``."""
    src_root, cfg = smoke_run
    root = str(tmp_path / "runs")
    shutil.copytree(layout.run_dir(src_root, cfg.run_id), layout.run_dir(root, cfg.run_id))
    return root, cfg


def test_truncated_checkpoint_is_named(run_copy, capsys):
    root, cfg = run_copy
    path = layout.checkpoint_path(root, cfg.run_id, 50)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    before = _tree(root)
    _refused(["analyze", cfg.run_id, "--runs", root], "epoch 50", capsys)
    assert _tree(root) == before


def test_checkpoint_of_another_run_is_refused(run_copy, tmp_path, capsys):
    from tasks import checkpoints as ckpt
    from tasks.config import preset
    from tasks.model import build_model

    root, cfg = run_copy
    other = preset("smoke", p=13)
    ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, 25), build_model(other), other, 25)
    before = _tree(root)
    _refused(["analyze", cfg.run_id, "--runs", root], f"holds run {other.run_id}", capsys)
    assert _tree(root) == before


def test_store_of_a_different_config_is_refused(run_copy, capsys):
    root, cfg = run_copy
    path = layout.config_path(root, cfg.run_id)
    with open(path) as f:
        config = json.load(f)
    config["seed"] = 12345  # a different run's config in this run's folder
    with open(path, "w") as f:
        json.dump(config, f)
    before = _tree(root)
    for argv in (["analyze", cfg.run_id], ["report", cfg.run_id]):
        _refused([*argv, "--runs", root], "holds the config of run", capsys)
    assert _tree(root) == before
