"""Shared fixtures: a temporary Prefect home, a seeded RNG for every test, and one analysed
smoke run reused by the store, viewer and browser tests. The skip rules are ``tests/skips.py``."""

from __future__ import annotations

import os
import tempfile

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="tdw-prefect-")  # never the user's database
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

pytest_plugins = ["tests.skips"]


@pytest.fixture(autouse=True)
def seeded_rng():
    """Every test starts from the same global torch RNG state. Torch seeds it from the OS in
    each process, so an unseeded draw would differ from run to run, and with what earlier tests
    in the process drew."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``(root, cfg)`` of a trained and fully analysed smoke run (plain steps, no Prefect)."""
    from tasks.config import preset
    from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run, train_run

    root = str(tmp_path_factory.mktemp("runs"))
    cfg = prepare_run(root, preset("smoke"))
    epochs = []
    train_run(root, cfg, device="cpu", on_checkpoint=epochs.append)
    choose_key_frequencies(root, cfg.run_id)
    for epoch in epochs:
        analyze_epoch(root, cfg.run_id, epoch)
    return root, cfg


@pytest.fixture(scope="module")
def prefect_harness():
    """A temporary Prefect server and database for the tests of one module that run real
    flows (~8 s to start). Module-scoped so that it never outlives them: a harness left
    running would catch the flows of later modules, including their own harnesses."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def root(tmp_path) -> str:
    return str(tmp_path / "runs")
