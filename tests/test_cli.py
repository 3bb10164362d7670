import os
import subprocess
import sys

import pytest

from flows.cli import main


def test_runs_lists_status(smoke_run, capsys):
    root, cfg = smoke_run
    assert main(["runs", "--runs", root]) == 0
    out = capsys.readouterr().out
    assert cfg.run_id in out and "150/150" in out and "5/5" in out


def test_runs_root_from_environment(smoke_run, capsys, monkeypatch):
    root, cfg = smoke_run
    monkeypatch.setenv("TDW_RUNS", root)
    assert main(["runs"]) == 0
    assert cfg.run_id in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["run", "--p", "4"], "odd prime"),
    (["run", "--p", "1"], "odd prime"),
    (["train", "--frac", "1"], "frac_train"),
    (["train", "--epochs", "0"], "num_epochs"),
    (["run", "--epochs", "100", "--checkpoints", "0,500"], "outside"),
    (["run", "--preset", "nope"], "unknown preset"),
    (["analyze", "p31-s0-d0-deadbeef"], "unknown run id"),
    (["analyze", "../etc"], "invalid run id"),
    (["run", "--device", "cuda:7", "--preset", "smoke"], "cuda"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(args, message, tmp_path, capsys):
    root = tmp_path / "runs"
    code = main([*args, "--runs", str(root)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err
    assert not root.exists() or not os.listdir(root)


def test_runs_root_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["runs", "--runs", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_console_script_bad_input_has_no_traceback(tmp_path):
    tdw = os.path.join(os.path.dirname(sys.executable), "tdw")
    out = subprocess.run([tdw, "run", "--p", "9", "--runs", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "odd prime" in out.stderr
    help_text = subprocess.run([tdw, "--help"], capture_output=True, text=True, timeout=60).stdout
    for cmd in ("run", "train", "analyze", "serve", "runs"):
        assert cmd in help_text
