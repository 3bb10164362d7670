"""Skips, as a pytest plugin (``tests/conftest.py`` loads it): tests marked ``gpu`` skip where
no CUDA GPU is; a skip that does not say why fails; and in CI (``CI`` set in the environment,
as ``.ci/run`` does) a skip whose reason is not in :data:`EXPECTED_IN_CI` fails, so that
nothing that should run there (the browser tests: CI installs Chromium) silently does not.
Free of heavy imports: ``tests/test_harness.py`` loads it alone."""

from __future__ import annotations

import os

import pytest

NO_GPU = "needs a CUDA GPU, and this machine has none"
EXPECTED_IN_CI = (NO_GPU,)  # CI machines have no GPU
UNEXPLAINED = ("", "unconditional skip")  # pytest.skip() and @pytest.mark.skip without a reason


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        import torch

        if not torch.cuda.is_available():
            for item in gpu:
                item.add_marker(pytest.mark.skip(reason=NO_GPU))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    _judge((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    _judge((yield).get_result())  # a whole module skipped (pytest.skip(allow_module_level=True))


def _judge(report) -> None:
    """Turn ``report``, a test's or a module's, into a failure if it is a skip not allowed here."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped:").strip()
    if reason in UNEXPLAINED:
        report.outcome, report.longrepr = "failed", "a skip must say why (give it a reason)"
    elif in_ci() and reason not in EXPECTED_IN_CI:
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI, where only these skips are expected: {EXPECTED_IN_CI}; "
                           f"this one's reason: {reason!r}")
