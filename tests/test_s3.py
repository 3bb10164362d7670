"""A runs root on object storage: an S3-compatible server (moto) on 127.0.0.1, the root an
``s3://`` URL with its endpoint from ``$TDW_STORAGE_OPTIONS``. The smoke pipeline writes its
checkpoints and Zarr store there through real Prefect flows; the viewer and xarray read them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from store import files
from tests.objectstore import make_bucket, moto_server, s3_environment

pytestmark = pytest.mark.slow  # an S3 server in its own process

BUCKET = "tdw-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The endpoint of a moto server with an empty bucket; the environment points at it."""
    mp = pytest.MonkeyPatch()
    with moto_server(str(tmp_path_factory.mktemp("moto") / "moto.log")) as endpoint:
        for key, value in s3_environment(endpoint).items():
            mp.setenv(key, value)
        make_bucket(BUCKET)
        yield endpoint
    mp.undo()


@pytest.fixture(scope="module")
def s3_run(s3, prefect_harness):
    """``(root, run_id)`` of the smoke pipeline run through Prefect flows onto the server."""
    from flows.pipeline import pipeline

    root = f"s3://{BUCKET}/runs"
    state = pipeline(preset="smoke", runs_dir=root, device="cpu", return_state=True)
    assert state.is_completed()
    return root, state.result()


def test_files_round_trip_on_the_server(s3):
    root = f"s3://{BUCKET}/scratch"
    assert files.is_url(root) and not files.is_url("/tmp/x") and not files.is_url("file:///tmp/x")
    files.write_text(f"{root}/a/config.json", '{"x": 1}')
    assert files.isfile(f"{root}/a/config.json") and files.isdir(f"{root}/a")
    assert json.loads(files.read_text(f"{root}/a/config.json")) == {"x": 1}
    assert files.read_bytes(f"{root}/a/config.json", 1, 4) == b'"x"'
    assert files.listdir(root) == ["a"] and files.listdir(f"{root}/missing") == []
    files.remove(f"{root}/a/config.json")
    assert not files.exists(f"{root}/a/config.json")


def test_checkpoints_on_the_server_are_checked_like_local_ones(s3):
    from tasks import checkpoints as ckpt
    from tasks.config import preset
    from tasks.model import build_model

    cfg = preset("smoke")
    model = build_model(cfg)
    path = f"s3://{BUCKET}/ckpt/epoch_00010.safetensors"
    ckpt.save_checkpoint(path, model, cfg, 10)
    assert ckpt.checkpoint_metadata(path)["run_id"] == cfg.run_id
    other = build_model(cfg.replace(seed=5))
    ckpt.load_into(other, path, cfg, 10)
    assert torch.equal(other.W_E, model.W_E)
    files.write_bytes(path, files.read_bytes(path)[:-100])  # truncated upload
    for read in (ckpt.checkpoint_metadata, ckpt.read_checkpoint):
        with pytest.raises(ckpt.CheckpointError, match="truncated"):
            read(path)


def test_bad_storage_options_are_one_line_bad_input(monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("TDW_STORAGE_OPTIONS", "{not json")
    assert main(["runs", "--runs", f"s3://{BUCKET}/runs"]) == 2
    assert "TDW_STORAGE_OPTIONS" in capsys.readouterr().err


@pytest.mark.slow
def test_pipeline_on_object_storage_fills_the_store_and_consolidates_it(s3_run):
    from store.layout import checkpoint_path, list_run_ids
    from store.run_store import is_consolidated, open_run
    from tasks.analyses import STANDARD
    from tasks.config import preset
    from tasks.runs import pending_epochs

    root, run_id = s3_run
    assert is_consolidated(root, run_id)  # the analysis flow's last step, with no writer left
    cfg = preset("smoke")
    assert run_id == cfg.run_id and list_run_ids(root) == [run_id]
    for epoch in cfg.checkpoint_epochs:
        assert files.isfile(checkpoint_path(root, run_id, epoch))
    st = open_run(root, run_id, mode="r")
    keys = st.key_frequencies()
    for analysis in STANDARD:
        assert st.done_mask(analysis.name, analysis.version(keys)).all(), analysis.name
    assert not np.isnan(st.series()["train_loss"]).any()
    assert pending_epochs(root, run_id) == []  # opens as a writer: the consolidated copy goes
    assert not is_consolidated(root, run_id)


def test_finished_run_is_consolidated_and_a_writer_removes_it(s3_run):
    from store.run_store import is_consolidated, open_run
    from store.schema import Variable
    from tasks.runs import consolidate_finished

    root, run_id = s3_run
    assert consolidate_finished(root, run_id) and is_consolidated(root, run_id)
    reader = open_run(root, run_id, mode="r")
    assert reader.group.metadata.consolidated_metadata is not None
    writer = open_run(root, run_id)  # a writer is active: readers must not see a stale copy
    assert not is_consolidated(root, run_id)
    writer.ensure_variables([Variable("late_array", ("epoch",), "float32", "late", "added after")])
    assert open_run(root, run_id, mode="r").has("late_array")
    assert consolidate_finished(root, run_id) and open_run(root, run_id, mode="r").has("late_array")


def test_viewer_and_xarray_read_the_object_store(s3_run, monkeypatch):
    import xarray as xr

    from store.layout import store_path
    from viz import data
    from viz.viewer import App

    root, run_id = s3_run
    monkeypatch.setenv("TDW_RUNS", root)
    data.forget()
    assert data.runs_root() == root and data.runs(root) == [run_id]
    app = App()  # the viewer as `tdw serve --runs s3://...` builds it
    assert app.run_select.value == run_id and app.view.epochs == data.analysed_epochs(root, run_id)
    last = app.view.epochs[-1]
    assert data.epoch_slice(root, run_id, "neuron_activations", last, 0, 3).shape == (31, 31)
    ds = xr.open_zarr(store_path(root, run_id), consolidated=False,
                      storage_options=files.storage_options(root))
    np.testing.assert_array_equal(ds.neuron_activations.sel(epoch=last).values,
                                  data.epoch_slice(root, run_id, "neuron_activations", last))
    data.forget()
