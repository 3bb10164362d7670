"""Sweeps: the grid, progress reporting, and a 2 x 2 sweep through Prefect in child processes
that resumes instead of retraining."""

import io
import os

import numpy as np
import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.sweep import summary_markdown
from cli.terminal import Bar
from store import layout
from tasks import progress
from tasks.config import ConfigError
from tasks.knobs import grid
from tasks.runs import pending_epochs
from tasks.training import Series


def test_grid_is_the_product_of_the_axes_without_duplicates():
    configs = grid("smoke", num_epochs=40, seeds=[1, 2], data_seeds=[5, 6], lrs=[1e-3])
    assert [(c.seed, c.data_seed, c.lr, c.num_epochs) for c in configs] == [
        (1, 5, 1e-3, 40), (1, 6, 1e-3, 40), (2, 5, 1e-3, 40), (2, 6, 1e-3, 40)]
    assert len({c.run_id for c in configs}) == 4
    assert len(grid("smoke", seeds=[3, 3, 3])) == 1  # same run id: one run
    assert [c.p for c in grid("smoke", primes=[13, 17])] == [13, 17]


def test_the_task_is_a_sweep_axis():
    """`tdw sweep --tasks add,mul --fracs 0.3,0.5`: every task at every fraction, each its own run."""
    from cli.main import _knob_values, parser

    args = parser().parse_args(["sweep", "--preset", "smoke", "--tasks", "add,mul", "--fracs", "0.3,0.5"])
    configs = grid("smoke", **_knob_values(args))
    assert [(c.task, c.frac_train) for c in configs] == [("add", 0.3), ("add", 0.5), ("mul", 0.3), ("mul", 0.5)]
    assert len({c.run_id for c in configs}) == 4
    assert grid("smoke", tasks=["add"])[0].run_id == grid("smoke")[0].run_id  # add: the ids of before


@pytest.mark.parametrize("axes,message", [
    ({"primes": [31, 33]}, "odd prime"),
    ({"fracs": [0.3, 1.5]}, "frac_train"),
    ({"seeds": []}, "empty"),
    ({"tasks": ["add", "nope"]}, "unknown task 'nope'"),
    ({"widths": [1]}, "unknown sweep axes"),
])
def test_a_bad_axis_value_is_refused_before_anything_runs(axes, message):
    with pytest.raises(ConfigError, match=message):
        grid("smoke", **axes)


def test_progress_file_round_trip_and_description(tmp_path):
    root = str(tmp_path)
    os.makedirs(layout.run_dir(root, "r1"))
    assert progress.read(root, "r1") is None and progress.describe(None) == "waiting"
    series = Series.empty(100)
    series.train_loss[:11] = np.linspace(4, 1, 11)
    series.test_acc[[0, 10]] = [0.01, 0.25]
    progress.write(root, "r1", 10, 100, series)
    snap = progress.read(root, "r1")
    assert snap["epoch"] == 10 and snap["train_loss"] == 1.0 and snap["test_acc"] == 0.25
    assert progress.fraction(snap) == pytest.approx(0.11)
    assert progress.describe(snap) == "epoch 10/99  loss 1.00e+00  test acc 0.250"
    with open(progress.path(root, "r1"), "w") as f:
        f.write("{torn")
    assert progress.read(root, "r1") is None


def test_bar_prints_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = Bar("sweep", stream=out, every_s=3600)
    bar.update(0.5, "half")
    bar.update(0.6, "throttled")  # within every_s: not printed
    bar.close(1.0, "done")
    lines = out.getvalue().splitlines()
    assert lines == [bar.line(0.5, "half"), bar.line(1.0, "done")]
    assert "[############............]  50.0%  half" in lines[0]


def test_summary_lists_every_run_and_failure():
    knobs = {"p": 31, "task": "add", "seed": 1, "data_seed": 1, "frac_train": 0.6, "lr": 3e-3,
             "weight_decay": 1.0, "d_mlp": 512}
    row = {"run_id": "p31-s1-d1-x", "knobs": knobs, "train_loss": 1e-3, "test_loss": 2.0,
           "test_acc": 0.5, "grokking_epoch": None, "key_frequencies": [3, 7]}
    text = summary_markdown([row], {"p31-s2-d1-y": "killed"})
    assert "| `p31-s1-d1-x` | 31 | add | 1 | 1 | 0.6 | 0.003 | 1 |" in text
    assert "| run id | modulus p | task | model seed | data seed | training fraction | learning rate |" in text
    assert "MLP width" not in text  # the same in every run: not a column
    assert "not reached | 3, 7 |" in text and "Failed: `p31-s2-d1-y`: killed" in text


def test_summary_shows_the_knobs_that_differ():
    rows = [{"run_id": f"r{w}", "knobs": {"p": 31, "task": "mul", "seed": 1, "data_seed": 1,
                                          "frac_train": 0.6, "lr": 3e-3, "weight_decay": 1.0, "d_mlp": w},
             "train_loss": 1e-3, "test_loss": 2.0, "test_acc": 0.5, "grokking_epoch": 40,
             "key_frequencies": []} for w in (64, 128)]
    text = summary_markdown(rows, {})
    assert "| MLP width | train loss |" in text
    assert "| `r64` | 31 | mul | 1 | 1 | 0.6 | 0.003 | 1 | 64 | 0.001 |" in text
    assert "| 40 | - |" in text


@pytest.mark.slow
def test_two_by_two_sweep_runs_children_in_processes_and_resumes(root):
    from prefect.client.orchestration import get_client

    from flows.sweep import sweep_flow

    kwargs = dict(preset="smoke", seeds=[1, 2], data_seeds=[1, 2], runs_dir=root,
                  device="cpu", concurrency=2, show_progress=False)
    with prefect_test_harness(server_startup_timeout=60):
        state = sweep_flow(**kwargs, return_state=True)
        assert state.is_completed()
        run_ids = state.result()
        assert len(run_ids) == 4 and layout.list_run_ids(root) == sorted(run_ids)
        with get_client(sync_client=True) as client:
            tasks = client.read_task_runs()
            flow_run = client.read_flow_run(state.state_details.flow_run_id)
            artifacts = client.read_artifacts()
        children = sorted(t.name for t in tasks if t.flow_run_id == flow_run.id and t.state.is_completed())
        assert children == sorted(run_ids)  # one task run per child, named by its run id
        summary = [a for a in artifacts if a.key == "sweep-summary"]
        assert summary and all(f"`{r}`" in summary[0].data for r in run_ids)
        assert any(a.type == "progress" and a.data == 100.0 for a in artifacts)
        for run_id in run_ids:
            assert pending_epochs(root, run_id) == []  # every checkpoint analysed
            assert progress.read(root, run_id)["epoch"] == 149

        ckpts = {(r, f): os.path.getmtime(os.path.join(layout.checkpoint_dir(root, r), f))
                 for r in run_ids for f in os.listdir(layout.checkpoint_dir(root, r))}
        assert sweep_flow(**kwargs) == run_ids  # again: finished runs are not retrained
        assert {k: os.path.getmtime(os.path.join(layout.checkpoint_dir(root, k[0]), k[1]))
                for k in ckpts} == ckpts


@pytest.mark.slow
def test_a_sweep_over_tasks_trains_and_analyses_each(root, capsys):
    """`tdw sweep --tasks add,mul --fracs 0.3 --preset smoke`: both runs trained on their own
    task's data and every checkpoint analysed."""
    from cli.main import main
    from tasks.runs import load_config

    argv = ["sweep", "--preset", "smoke", "--tasks", "add,mul", "--fracs", "0.3", "--runs", root,
            "--device", "cpu", "--concurrency", "2"]
    with prefect_test_harness(server_startup_timeout=60):
        assert main(argv) == 0, capsys.readouterr().err
    run_ids = layout.list_run_ids(root)
    assert sorted(load_config(root, r).task for r in run_ids) == ["add", "mul"]
    for run_id in run_ids:
        assert pending_epochs(root, run_id) == []  # every checkpoint analysed
        assert progress.read(root, run_id)["epoch"] == 149
