"""The grid of tasks × training fractions (``viz.grid``, Compare runs): the epoch each run first
reaches test accuracy 0.95, read from synthetic stores (series and root attributes only)."""

import numpy as np
import pytest

from store.run_store import create_run
from viz import compare, data, grid, viewer  # noqa: F401  (viewer: HoloViews' Bokeh backend, as on the page)

def _run(root: str, task: str, frac: float, reach: int | None, seed: int = 1, epochs: int = 100,
         trained: int | None = None, p: int = 7) -> str:
    """A store whose test accuracy (measured every 5 epochs) first reaches 0.95 at ``reach``
    (never when None), trained through ``trained`` epochs (default all). Its task is in its
    config alone (the root attributes are the viewer tests')."""
    run_id = f"{task.replace('+', 'p')}-f{frac}-s{seed}"
    config = {"p": p, "frac_train": frac, "num_epochs": epochs, "checkpoint_epochs": [0, epochs - 1]}
    if task != "add":  # a config from before tasks were recorded: add
        config["task"] = task
    st = create_run(root, run_id, config, [0, epochs - 1], {"p": 7, "d_mlp": 4, "n_heads": 1, "num_epochs": epochs})
    e = np.arange(epochs, dtype=float)
    test = np.where(e >= (reach if reach is not None else epochs), 0.97, 0.5 * e / epochs)
    test[e % 5 != 0] = np.nan  # evaluated every 5 epochs; the reach epochs used here are multiples of 5
    series = {"test_acc": test, "train_acc": np.ones(epochs), "train_loss": np.ones(epochs), "test_loss": np.ones(epochs)}
    st.write_series(series, 0, trained or epochs)
    return run_id


@pytest.fixture
def sweep(tmp_path):
    root = str(tmp_path)
    _run(root, "add", 0.3, 40)
    _run(root, "add", 0.5, 10)
    _run(root, "mul", 0.3, 60)
    _run(root, "mul", 0.3, None, seed=2)
    _run(root, "mul", 0.5, 20)
    _run(root, "x2+y2", 0.3, None)
    _run(root, "x2+y2", 0.5, None, trained=50)  # still training
    data.forget()
    yield root
    data.forget()


def test_outcome_is_the_first_epoch_at_095(sweep):
    o = grid.outcome(sweep, "mul-f0.3-s1")
    assert (o.task, o.formula, o.frac, o.epoch, o.trained, o.planned) == ("mul", "(a · b) mod p", 0.3, 60, 100, 100)
    assert grid.outcome(sweep, "add-f0.3-s1").formula == "(a + b) mod p"
    assert grid.outcome(sweep, "x2py2-f0.3-s1").epoch is None


def test_cells_rows_in_registry_order_and_marked_when_not_generalised(sweep):
    tasks, fracs, cells = grid.cells(grid.outcomes(sweep, data.runs(sweep)))
    assert tasks == ["add", "mul", "x2+y2"] and fracs == [0.3, 0.5]
    text = {(c.task, c.frac): c.text for c in cells}
    assert text[("add", 0.3)] == "40" and text[("mul", 0.5)] == "20"
    assert text[("mul", 0.3)] == "60\n(1 of 2 runs)"  # one seed generalised, one did not
    assert text[("x2+y2", 0.3)] == "did not generalise\nin 100 epochs"
    assert text[("x2+y2", 0.5)] == "not yet\n(epoch 50)"  # a run still training is not a failure
    assert grid.markdown(grid.outcomes(sweep, data.runs(sweep))).splitlines()[2:] == [
        "| add | 40 | 10 |", "| mul | 60 (1 of 2 runs) | 20 |",
        "| x2+y2 | did not generalise in 100 epochs | not yet (epoch 50) |"]


def test_grid_figure_colours_epochs_and_hatches_failures(sweep):
    fig = grid.plot(grid.outcomes(sweep, data.runs(sweep)))
    d = fig.renderers[0].data_source.data
    cell = {(r, c): i for i, (r, c) in enumerate(zip(d["row"], d["col"]))}
    fail, ok = cell[("x2+y2: (a² + b²) mod p", "0.3")], cell[("add: (a + b) mod p", "0.5")]
    assert np.isnan(d["value"][fail]) and d["hatch"][fail] == "/" and "did not generalise" in d["text"][fail]
    assert d["value"][ok] == 10 and d["hatch"][ok] == " " and d["text"][ok] == "10"
    assert list(fig.y_range.factors)[-1] == "add: (a + b) mod p"  # the first row at the top
    assert list(fig.x_range.factors) == ["0.3", "0.5"]


def test_compare_page_shows_the_grid_over_every_run_or_the_picked(sweep):
    page = compare.Compare(sweep, "mul-f0.3-s1")
    assert page.runs.options["mul-f0.3-s1 · mul"] == "mul-f0.3-s1"  # labelled with their tasks
    page.mode.value = compare.MODES[1]
    assert page.plot.object.name == "task_grid" and not page.measure.visible and page.every.visible
    assert len(page.plot.object.renderers[0].data_source.data["row"]) == 6
    page.every.value = False
    page.runs.value = ["mul-f0.3-s1", "add-f0.5-s1"]
    assert sorted(page.plot.object.renderers[0].data_source.data["text"]) == ["10", "60"]
    page.every.value = True
    _run(sweep, "mul", 0.7, 5)  # a sweep's next run lands: the refresh redraws
    page.refresh()
    assert "mul-f0.7-s1" in page.runs.options.values()
    assert len(page.plot.object.renderers[0].data_source.data["row"]) == 7
    page.mode.value = compare.MODES[0]
    assert page.measure.visible and page.plot.object.name == "compare"


def test_runs_of_different_settings_get_rows_of_their_own(tmp_path):
    root = str(tmp_path)
    _run(root, "add", 0.3, 40)
    _run(root, "add", 0.3, 60, seed=2)
    _run(root, "add", 0.3, None, seed=3, p=11)  # the same task and fraction at another modulus
    found = grid.outcomes(root, data.runs(root))
    rows, fracs, cells = grid.cells(found)
    assert rows == ["add · p 7", "add · p 11"] and fracs == [0.3]  # numbers in numeric order
    text = {c.row: c.text for c in cells}
    assert text == {"add · p 7": "50", "add · p 11": "did not generalise\nin 100 epochs"}  # not pooled
    assert grid.markdown(found).splitlines()[2:] == ["| add · p 7 | 50 |", "| add · p 11 | did not generalise in 100 epochs |"]
    assert {o.setting[-1] for o in found} == {"native"}  # configs from before the init knob: native runs
    labels = list(grid.plot(found).y_range.factors)
    assert labels == ["add: (a + b) mod p · p 11", "add: (a + b) mod p · p 7"]  # the first row at the top
    data.forget()
