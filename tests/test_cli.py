import os
import subprocess
import sys
import time

import pytest

from cli.main import main

HEAVY = ("torch", "prefect", "transformer_lens")


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


def test_the_command_line_validates_without_torch_prefect_or_transformer_lens(tmp_path):
    """Importing the command line, asking for help and refusing bad input (a p that is no prime,
    an unknown device, a bad --ln, a bad sweep axis) import none of the heavy libraries."""
    code = f"""
import contextlib, io, sys
import cli.main
loaded = [m for m in {HEAVY!r} if m in sys.modules]
with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
    codes = [cli.main.main(argv + ["--runs", {str(tmp_path)!r}]) for argv in (
        ["run", "--p", "100"], ["train", "--device", "tpu:9"], ["run", "--ln", "yes"],
        ["sweep", "--primes", "31,33"])] + [cli.main.main(["run", "--help"])]
print(loaded, [m for m in {HEAVY!r} if m in sys.modules], codes)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[] [] [2, 2, 2, 2, 0]", out.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.alone
def test_help_and_bad_input_answer_at_once(tmp_path):
    """`tdw run --p 100` took ~9.5 s (Prefect, torch and TransformerLens imported first)."""
    tdw = os.path.join(os.path.dirname(sys.executable), "tdw")
    for argv in (["run", "--p", "100", "--runs", str(tmp_path)], ["--help"], ["run", "--help"]):
        start = time.monotonic()
        out = subprocess.run([tdw, *argv], capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - start
        assert out.returncode == (2 if "--p" in argv else 0) and elapsed < 1.5, (argv, elapsed, out.stderr)
