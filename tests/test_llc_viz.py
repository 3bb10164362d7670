"""The LLC's views (viz/llc.py) on a smoke run whose store holds synthetic LLC values: λ̂ over
training with its spread (flagged values apart, never on the curve), the chains' traces of the
current checkpoint, both on the Progress measures tab and following the slider."""

import shutil

import numpy as np
import pytest

from store import layout
from store.run_store import open_run
from tasks.analyses import BY_NAME
from tasks.runs import add_analyses
from viz import data, llc, views
from viz.viewer import App


@pytest.fixture
def llc_run(tmp_path, smoke_run):
    """A copy of the smoke run with LLC values written for every checkpoint: λ̂ = 10 + epoch
    index, spread 1; the third checkpoint diverged, the fourth not stationary."""
    root, cfg = smoke_run
    copy = str(tmp_path / "runs")
    shutil.copytree(layout.run_dir(root, cfg.run_id), layout.run_dir(copy, cfg.run_id))
    add_analyses(copy, cfg.run_id, ("llc",))
    st = open_run(copy, cfg.run_id)
    chains, draws = st.array("llc_trace").shape[1:]
    rng = np.random.default_rng(0)
    for i, epoch in enumerate(cfg.checkpoint_epochs):
        values = {"llc": 10.0 + i, "llc_std": 1.0, "llc_chain": np.full(chains, 10.0 + i),
                  "llc_trace": 0.1 * i + 0.01 * rng.random((chains, draws)), "llc_init_loss": 0.1 * i,
                  "llc_diverged": i == 2, "llc_nonstationary": i == 3}
        for var in BY_NAME["llc"].outputs:
            st.write_epoch(var.name, epoch, np.asarray(values[var.name], dtype=var.dtype))
        st.mark_done("llc", epoch, BY_NAME["llc"].version())
    data.forget()
    return copy, cfg


def test_lambda_over_training_leaves_flagged_values_off_the_curve(llc_run):
    root, cfg = llc_run
    epochs = np.asarray(cfg.checkpoint_epochs)
    element = llc.over_training(root, cfg.run_id)
    band, line, dots, crosses = element.values()
    shown = line.dimension_values("λ̂")
    expected = 10.0 + np.arange(len(epochs))
    expected[[2, 3]] = np.nan
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(band.dimension_values("spread")[[0, 2, 3]], [1.0, np.nan, np.nan])
    np.testing.assert_array_equal(crosses.dimension_values("epoch"), epochs[[2, 3]])
    np.testing.assert_array_equal(crosses.dimension_values("λ̂"), [12.0, 13.0])


def test_the_traces_of_the_current_checkpoint_and_its_flags(llc_run):
    root, cfg = llc_run
    view = llc.Traces(root, cfg.run_id)
    epoch = cfg.checkpoint_epochs[2]
    view.show(epoch)
    trace = data.epoch_slice(root, cfg.run_id, "llc_trace", epoch)
    assert len(view.sources) == trace.shape[0]
    np.testing.assert_array_equal(view.sources[1].data["loss"], trace[1])
    assert view.init.location == pytest.approx(0.2)
    assert "FLAGGED: diverged" in view.figure.title.text
    view.show(cfg.checkpoint_epochs[1])
    assert "FLAGGED" not in view.figure.title.text and "λ̂ = 11" in view.figure.title.text


def test_the_progress_tab_shows_both_and_they_follow_the_slider(llc_run):
    root, cfg = llc_run
    view = App(root).view
    view.tabs.active = views.TABS.index(views.PROGRESS)
    assert {"llc", "llc_traces"} <= set(view.views)
    epoch = cfg.checkpoint_epochs[3]
    view.epoch.value = epoch
    assert view.views["llc"].marker.location == epoch
    assert "not stationary" in view.views["llc_traces"].figure.title.text


def test_the_report_states_the_llc_story_from_the_stored_values(llc_run, smoke_run):
    from viz import report

    root, cfg = llc_run
    e = cfg.checkpoint_epochs
    phases = {"memorisation": (0, e[1]), "circuit formation": (e[1], e[3]), "cleanup": (e[3], e[4])}
    text = llc.story(root, cfg.run_id, phases)  # good values 10, 11, 14 at checkpoints 0, 1, 4
    assert "rises through memorisation (10 at epoch 0 → 11 at epoch 25" in text
    assert "**does not fall** through circuit formation and cleanup (→ 14 at epoch 149)" in text
    assert "2 of 5 values flagged" in text
    assert "Local learning coefficient" in report.markdown(root, cfg.run_id)
    assert "not analysed" in llc.story(smoke_run[0], cfg.run_id, phases)  # a run without it


def test_the_train_page_starts_tdw_run_with_llc_when_ticked(tmp_path, monkeypatch):
    from cli.main import parser
    from viz import train

    assert "--llc" not in train.command("/runs", "smoke", {})
    assert parser().parse_args(train.command("/runs", "smoke", {}, llc=True)[3:]).llc
    started = []
    monkeypatch.setattr(train, "start", lambda *args: started.append(args))
    page = train.TrainPage(str(tmp_path), on_open=lambda run_id: None)
    assert not page.llc.disabled  # devinterp is installed here
    page.llc.value = True
    page.submit()
    assert started and started[0][-1] is True


def test_the_viewers_analysed_checkpoints_do_not_wait_for_the_llc(llc_run):
    root, cfg = llc_run
    st = open_run(root, cfg.run_id)
    st.group["llc_done"][:] = 0  # asked for, not computed yet
    data.forget()
    assert "llc" not in data.checkpoint_analyses(root, cfg.run_id)
    assert data.analysed_epochs(root, cfg.run_id) == list(cfg.checkpoint_epochs)


def test_every_analysis_draws_the_llc_variables(llc_run):
    root, cfg = llc_run
    view = App(root).view
    view.tabs.active = views.TABS.index(views.EVERY)
    for name in ("llc", "llc_chain", "llc_trace", "llc_diverged"):
        shown = view._explore().make(name)
        assert shown is not None, name
        shown.show(cfg.checkpoint_epochs[1])
