"""``tdw zoom``: bad input refused in one line (exit code 2) before any replay, and the
``zoom-<run id>`` flow end to end in Prefect's test harness."""

import pytest

from cli.main import main
from store.run_store import open_run
from tasks import zoom
from tasks.config import preset
from tasks.lock import training_lock
from tasks.runs import analysis_to_do, analyze_epoch, prepare_run, train_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run of 81 epochs, checkpoints 0, 40, 80, states every 20, analysed."""
    root = str(tmp_path_factory.mktemp("runs"))
    cfg = prepare_run(root, preset("smoke", num_epochs=81, checkpoint_epochs=(0, 40, 80), state_every=20))
    train_run(root, cfg, device="cpu")
    for epoch in analysis_to_do(root, cfg.run_id):
        analyze_epoch(root, cfg.run_id, epoch)
    return root, cfg


@pytest.mark.parametrize("argv, message", [
    (["--from", "60", "--to", "50", "--every", "5"], "--from 60 is after --to 50"),
    (["--from", "50", "--to", "500", "--every", "5"], "outside run"),
    (["--from", "50", "--to", "60", "--every", "0"], "--every must be a positive"),
    (["--from", "50", "--to", "60"], "give one of --every K or --count N"),
    (["--every", "5"], "give --from A and --to B"),
    (["--auto", "--from", "50"], "--auto chooses its own epochs"),
    (["--auto", "--budget", "0"], "--budget must be a positive"),
])
def test_bad_input_is_one_line_and_exit_code_2(trained, capsys, argv, message):
    root, cfg = trained
    assert main(["zoom", cfg.run_id, "--runs", root, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_an_unknown_run_and_a_run_that_is_training_are_refused(trained, capsys):
    root, cfg = trained
    assert main(["zoom", "p31-nope", "--runs", root, "--from", "1", "--to", "2", "--every", "1"]) == 2
    assert "unknown run id" in capsys.readouterr().err
    with training_lock(root, cfg.run_id):
        assert main(["zoom", cfg.run_id, "--runs", root, "--from", "50", "--to", "60", "--every", "10"]) == 2
    assert "being trained by another process" in capsys.readouterr().err


@pytest.mark.slow
def test_the_zoom_flow_replays_adds_and_analyses_the_new_checkpoints(prefect_harness, trained, capsys):
    root, cfg = trained
    assert main(["zoom", cfg.run_id, "--runs", root, "--from", "50", "--to", "60", "--every", "10",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "2 new checkpoint(s) at epochs 50, 60; replaying from the saved state at epoch 40" in out
    assert "analysed 2" in out
    st = open_run(root, cfg.run_id)
    assert list(st.epochs) == [0, 40, 50, 60, 80]
    assert all(st.done_mask(name).all() for name in st.analyses())
    from prefect import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def names():
        async with get_client() as client:
            return [r.name for r in await client.read_flow_runs()]
    assert f"zoom-{cfg.run_id}" in run_coro_as_sync(names())
    assert main(["zoom", cfg.run_id, "--runs", root, "--from", "50", "--to", "60", "--every", "10"]) == 0
    assert "no new epochs" in capsys.readouterr().out
    assert zoom.load_config(root, cfg.run_id).checkpoint_epochs == (0, 40, 50, 60, 80)
