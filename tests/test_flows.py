"""The smoke pipeline end to end through real Prefect flows (Prefect's test harness)."""

import numpy as np
import pytest

from store.run_store import open_run
from tasks.analyses import BY_NAME, STANDARD
from tasks.config import preset
from tasks.runs import analyze_epoch, pending_epochs


@pytest.fixture(scope="module")
def harness(prefect_harness):
    yield


@pytest.mark.slow
def test_pipeline_trains_fans_out_and_fills_the_store(harness, root):
    from flows.analyze import analyze_flow
    from flows.pipeline import pipeline

    state = pipeline(preset="smoke", runs_dir=root, device="cpu", return_state=True)
    assert state.is_completed()
    run_id = state.result()
    cfg = preset("smoke")
    assert run_id == cfg.run_id
    st = open_run(root, run_id)
    keys = st.key_frequencies()
    assert keys and all(1 <= k <= 15 for k in keys)
    for analysis in STANDARD:
        assert st.done_mask(analysis.name, analysis.version(keys)).all(), analysis.name
    assert not np.isnan(st.series()["train_loss"]).any()
    assert np.nanmax(st.series()["train_acc"]) == 1.0  # smoke memorises
    assert pending_epochs(root, run_id) == []

    # knock out one epoch's record: the analysis flow redoes exactly that checkpoint
    st.group["neuron_frequencies_done"][2] = 0
    assert analyze_flow(run_id, root) == [cfg.checkpoint_epochs[2]]
    assert st.done_mask("neuron_frequencies").all()


def test_analysis_is_skipped_when_current_and_redone_when_stale(smoke_run):
    root, cfg = smoke_run
    epoch = cfg.checkpoint_epochs[1]
    assert analyze_epoch(root, cfg.run_id, epoch) == []
    st = open_run(root, cfg.run_id)
    st.mark_done("embedding_spectrum", epoch, "embedding_spectrum@old-code")
    assert analyze_epoch(root, cfg.run_id, epoch) == ["embedding_spectrum"]
    assert st.done_mask("embedding_spectrum", BY_NAME["embedding_spectrum"].version()).all()
