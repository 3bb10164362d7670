import os
import subprocess
import sys


from cli.main import main


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


def test_console_script_bad_input_has_no_traceback(tmp_path):
    tdw = os.path.join(os.path.dirname(sys.executable), "tdw")
    out = subprocess.run([tdw, "run", "--p", "9", "--runs", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "odd prime" in out.stderr
    help_text = subprocess.run([tdw, "--help"], capture_output=True, text=True, timeout=60).stdout
    for cmd in ("run", "train", "analyze", "serve", "runs"):
        assert cmd in help_text

