"""The test harness itself: the skip rules (``tests/skips.py``), run by pytest on a small test
file in a subprocess with and without ``CI`` set, and waiting on a condition (``tests/wait.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import skips
from tests.wait import wait_for

REPO = Path(__file__).resolve().parent.parent
SAMPLE = '''
import pytest
from tests.skips import NO_GPU

def test_runs():
    pass

def test_skips_unexpectedly():
    pytest.skip("Chromium is not installed")

@pytest.mark.skip(reason=NO_GPU)
def test_skips_for_want_of_a_gpu():
    pass

@pytest.mark.skip
def test_skips_without_a_reason():
    pass

@pytest.mark.skipif(True, reason="Debian's chromium is not installed")
def test_skips_by_marker():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
'''


SKIPPED_MODULE = '''
import pytest

pytest.skip("moto is not installed", allow_module_level=True)
'''
GPU_SAMPLE = '''
@pytest.mark.gpu
def test_marked_gpu():
    pass
'''


def _outcomes(tmp_path: Path, ci: str | None, sample: str = SAMPLE) -> tuple[int, dict[str, str], str]:
    """``(exit code, {test name: outcome}, output)`` of the sample file and of a module that
    skips whole (``"module"``); a skip turned into a failure while a test is set up (a skip
    marker's) or collected (a module's) reads ERROR."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a CUDA GPU\n")
    (tmp_path / "test_sample.py").write_text(sample)
    (tmp_path / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(REPO)}
    if ci is not None:
        env["CI"] = ci
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.skips", "-p", "no:cacheprovider",
                          "-v", "-rA", "--continue-on-collection-errors", "."], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    found = dict(re.findall(r"^test_sample.py::(\w+) (PASSED|FAILED|SKIPPED|XFAIL|ERROR)", out.stdout, re.M))
    found |= {"module": kind for kind in re.findall(r"^(ERROR|SKIPPED) (?:\[1\] )?test_skipped_module.py",
                                                    out.stdout, re.M)}
    return out.returncode, found, out.stdout


def _gpu_outcome() -> str:
    import torch

    return "PASSED" if torch.cuda.is_available() else "SKIPPED"


def test_outside_ci_a_skip_with_a_reason_is_a_skip(tmp_path):
    code, outcomes, out = _outcomes(tmp_path, None)
    assert outcomes == {"test_runs": "PASSED", "test_skips_unexpectedly": "SKIPPED",
                        "test_skips_for_want_of_a_gpu": "SKIPPED", "test_skips_without_a_reason": "ERROR",
                        "test_skips_by_marker": "SKIPPED", "test_expected_failure": "XFAIL",
                        "module": "SKIPPED"}, out
    assert code == 1 and "a skip must say why" in out


@pytest.mark.slow  # imports torch for the gpu-marked test
def test_in_ci_only_an_expected_skip_is_a_skip(tmp_path):
    """With a gpu-marked test too (the rule imports torch for it only: ~4 s more)."""
    code, outcomes, out = _outcomes(tmp_path, "true", SAMPLE + GPU_SAMPLE)
    assert outcomes == {"test_runs": "PASSED", "test_skips_unexpectedly": "FAILED",
                        "test_skips_for_want_of_a_gpu": "SKIPPED", "test_skips_without_a_reason": "ERROR",
                        "test_skips_by_marker": "ERROR", "test_marked_gpu": _gpu_outcome(),
                        "test_expected_failure": "XFAIL", "module": "ERROR"}, out
    assert code == 1 and "skipped in CI" in out and "Chromium is not installed" in out
    assert "moto is not installed" in out


@pytest.mark.parametrize("value,ci", [("true", True), ("1", True), ("yes", True), ("", False),
                                      ("false", False), ("0", False), (None, False)])
def test_ci_is_read_from_the_environment(monkeypatch, value, ci):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert skips.in_ci() is ci


def test_wait_for_returns_the_condition_once_true():
    start = time.monotonic()
    assert wait_for(lambda: time.monotonic() - start > 0.1 and "done", 5, interval=0.01) == "done"
    assert time.monotonic() - start < 2


def test_wait_for_fails_after_the_timeout_naming_what_it_waited_for():
    start = time.monotonic()
    with pytest.raises(AssertionError, match="waited 0.2 s for the moon"):
        wait_for(lambda: False, 0.2, interval=0.01, what=lambda: "the moon")
    assert 0.2 <= time.monotonic() - start < 2


def test_wait_for_ends_at_once_when_the_condition_raises():
    def hopeless():
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_for(hopeless, 60)
