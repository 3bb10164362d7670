import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import xarray as xr

from store import layout
from store.run_store import StoreError, create_run, list_runs, open_run, version_stamp
from store.schema import Variable, done_variable

DIMS = {"p": 7, "d_mlp": 32, "n_heads": 4, "num_epochs": 50}
EPOCHS = [0, 10, 20, 30, 49]
ACTS = Variable("acts", ("epoch", "neuron", "a", "b"), "float16", "acts", "test", inner_chunk=16)


def _store(root):
    st = create_run(root, "r1", {"p": 7}, EPOCHS, DIMS)
    st.ensure_variables([ACTS, done_variable("acts")])
    return st


def test_xarray_opens_the_run_store_fully_labelled(smoke_run):
    root, cfg = smoke_run
    ds = xr.open_zarr(layout.store_path(root, cfg.run_id), consolidated=False)
    assert ds["epoch"].values.tolist() == list(cfg.checkpoint_epochs)
    assert ds["neuron_activations"].dims == ("epoch", "layer", "neuron", "a", "b")
    assert ds["neuron_freq_fraction"].dims == ("epoch", "layer", "neuron", "freq")
    assert ds["layer"].values.tolist() == [0] and ds["layer_label"].values.tolist() == ["layer 0"]
    assert "layer_label" in ds["neuron_freq_fraction"].coords and "layer_label" in ds["resid_freq_share"].coords
    assert [str(x) for x in ds["component"].values[:3]] == ["const", "cos 1", "sin 1"]
    assert ds["freq"].values.tolist() == list(range(1, 16))
    assert "freq_label" in ds["neuron_freq_fraction"].coords
    assert ds["neuron_activations"].attrs["hook"] == "mlp.hook_post"  # in every layer
    for name, var in ds.data_vars.items():
        assert var.dims and "long_name" in var.attrs, name
        for dim in var.dims:
            assert dim in ds.coords, (name, dim)
    assert ds.attrs["config"]["p"] == 31 and "code_version" in ds.attrs
    assert (ds.attrs["task"], ds.attrs["basis"], ds.attrs["generator"]) == ("add", "Fourier basis of Z_31", None)
    assert ds["a"].values.tolist() == list(range(31))
    final = ds["neuron_activations"].sel(epoch=cfg.checkpoint_epochs[-1]).values
    assert final.dtype == np.float16 and (final >= 0).all() and final.max() > 0


def test_missing_chunks_read_as_nan_and_done_is_explicit(tmp_path):
    st = _store(str(tmp_path))
    assert np.isnan(st.read("acts", 10)).all()
    assert not st.done_mask("acts").any()
    st.write_epoch("acts", 10, np.ones((32, 7, 7)))
    st.mark_done("acts", 10, "acts@v1")
    assert st.done_mask("acts").tolist() == [False, True, False, False, False]
    assert st.done_mask("acts", "acts@v1")[1] and not st.done_mask("acts", "acts@v2")[1]
    assert st.read("acts", 10, 3).shape == (7, 7)
    with pytest.raises(StoreError, match="not a checkpoint"):
        st.index(11)


@pytest.mark.parametrize("d_mlp, n_layers", [(100, 1), (7, 1), (20, 3)])
def test_every_analysis_variable_is_created_for_any_mlp_width(tmp_path, d_mlp, n_layers):
    """A width that is no multiple of the activations' inner chunk of 16 neurons (100), or
    smaller than it (7), at one layer or three: every variable is created and an epoch of
    activations reads back, whole and one neuron of one layer."""
    from tasks.analyses import variables

    st = create_run(str(tmp_path), "r1", {"p": 7}, EPOCHS, {**DIMS, "d_mlp": d_mlp, "n_layers": n_layers})
    st.ensure_variables(variables())
    acts = np.random.default_rng(0).random((n_layers, d_mlp, 7, 7)).astype(np.float16)
    st.write_epoch("neuron_activations", 20, acts)
    assert np.array_equal(st.read("neuron_activations", 20), acts)
    assert np.array_equal(st.read("neuron_activations", 20, n_layers - 1, d_mlp - 1), acts[-1, -1])
    assert st.read("layer").tolist() == list(range(n_layers)) and st.sizes()["layer"] == n_layers


def test_refuses_to_recreate_and_lists_runs(tmp_path):
    root = str(tmp_path)
    _store(root)
    with pytest.raises(StoreError, match="already"):
        create_run(root, "r1", {}, EPOCHS, DIMS)
    assert list_runs(root) == ["r1"]
    with pytest.raises(StoreError):
        open_run(root, "nope")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a" * 200])
def test_run_ids_cannot_escape_the_root(bad):
    with pytest.raises(layout.LayoutError):
        layout.run_dir("/tmp/runs", bad)


def test_version_stamp_is_positive_and_distinct():
    assert version_stamp("a") > 0 and version_stamp("a") != version_stamp("b")


def _write(root, epoch):
    st = open_run(root, "r1")
    st.write_epoch("acts", epoch, np.full((32, 7, 7), epoch, dtype=np.float16))
    st.mark_done("acts", epoch, "v")


@pytest.mark.slow  # writer processes
def test_concurrent_writers_on_disjoint_epochs(tmp_path):
    root = str(tmp_path)
    _store(root)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda e: _write(root, e), EPOCHS[:3]))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(root, e)) for e in EPOCHS[3:]]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    st = open_run(root, "r1")
    assert st.done_mask("acts", "v").all()
    for e in EPOCHS:
        assert (st.read("acts", e) == e).all()


def test_analysed_epochs_follow_the_analyses_the_store_records(tmp_path):
    """The viewer's analysed epochs need the done record of every analysis the run's store
    records, except those that wait for the key frequencies; a store with fewer or more
    analyses is read as it is."""
    from viz import data

    root = str(tmp_path)
    st = create_run(root, "r1", {"p": 7}, EPOCHS, DIMS)
    st.ensure_variables([done_variable("x"), done_variable("y"), done_variable("late", needs=("key_frequencies",))])
    assert open_run(root, "r1", mode="r").analyses() == {"late": ["key_frequencies"], "x": [], "y": []}
    for epoch in (0, 10, 20):
        st.mark_done("x", epoch, "x@1")
    for epoch in (10, 20, 30):
        st.mark_done("y", epoch, "y@1")
    data.forget()
    assert data.checkpoint_analyses(root, "r1") == ("x", "y")
    assert data.analysed_epochs(root, "r1") == [10, 20]  # "late" not done anywhere: not waited for
    st.ensure_variables([done_variable("more")])  # a run type with one more analysis
    st.mark_done("more", 20, "more@1")
    data.forget()
    assert data.analysed_epochs(root, "r1") == [20]
    del st.group["y_done"], st.group["more_done"]  # ... or fewer
    data.forget()
    assert data.analysed_epochs(root, "r1") == [0, 10, 20]
    data.forget()


def test_done_mask_from_the_stored_records_matches_their_values(tmp_path):
    """Without a version, done_mask lists which records are stored: it agrees with their
    values, a record taken back to 0 included."""
    st = _store(str(tmp_path))
    for epoch in (0, 20, 49):
        st.mark_done("acts", epoch, "acts@v1")
    st.array("acts_done")[st.index(20)] = 0
    assert st.done_mask("acts").tolist() == (st.array("acts_done")[:] != 0).tolist() == [True, False, False, False, True]


def test_xarray_reads_a_mul_runs_basis_without_project_code(tmp_path):
    """A mul run at p = 13: operand axes of n = 12 units in discrete-log order (g = 2), basis rows
    and frequencies of Z_12 (its top frequency a single cos 6 row), 13 classes, and the task and
    basis as root attributes."""
    from tasks.analyses import variables

    root = str(tmp_path)
    st = create_run(root, "m", {"p": 13, "task": "mul"}, EPOCHS, {**DIMS, "p": 13})
    st.ensure_variables(variables())
    frac = np.random.default_rng(0).random((1, 32, 6)).astype(np.float32)
    st.write_epoch("neuron_freq_fraction", 20, frac)
    ds = xr.open_zarr(layout.store_path(root, "m"), consolidated=False)
    assert ds["a"].values.tolist() == ds["b"].values.tolist() == [1, 2, 4, 8, 3, 6, 12, 11, 9, 5, 10, 7]
    assert "2^i mod p" in ds["a"].attrs["description"]
    assert ds["c"].values.tolist() == list(range(13)) and ds["c"].attrs["long_name"] == "output class (a · b) mod p"
    assert [str(x) for x in ds["component"].values[[0, 1, -1]]] == ["const", "cos 1", "cos 6"]
    assert ds["freq"].values.tolist() == [1, 2, 3, 4, 5, 6]
    assert ds["freq"].attrs["basis"] == "Fourier basis of Z_12 over discrete logs base 2"
    assert ds.attrs["task"] == "mul" and ds.attrs["task_formula"] == "(a · b) mod p"
    assert ds.attrs["basis"] == "Fourier basis of Z_12 over discrete logs base 2"
    assert ds.attrs["basis_kind"] == "fourier" and ds.attrs["generator"] == 2
    assert ds["neuron_activations"].shape[3:] == (12, 12) and ds["class_accuracy"].shape[2] == 13
    np.testing.assert_array_equal(ds["neuron_freq_fraction"].sel(epoch=20).values, frac)


def test_a_store_written_before_tasks_is_add_and_gains_its_attributes_when_written(tmp_path):
    root = str(tmp_path)
    st = _store(root)
    for name in ("task", "task_formula", "basis", "basis_kind", "generator"):
        del st.group.attrs[name]
    old = open_run(root, "r1", mode="r")
    assert old.task == "add" and old.basis().n == 7 and "task" not in old.attrs
    assert old.sizes()["a"] == 7 and old.sizes()["freq"] == 3
    open_run(root, "r1").ensure_variables([done_variable("x")])
    attrs = open_run(root, "r1", mode="r").attrs
    assert (attrs["task"], attrs["basis"], attrs["basis_kind"], attrs["generator"]) == (
        "add", "Fourier basis of Z_7", "fourier", None)


def test_a_residue_basis_is_labelled_as_a_convention(tmp_path):
    st = create_run(str(tmp_path), "q", {"p": 7, "task": "x2+y2"}, EPOCHS, DIMS)
    assert st.attrs["basis"] == "residues (no group law of this task)" and st.attrs["basis_kind"] == "residues"
    assert st.read("a").tolist() == list(range(7)) and st.sizes()["freq"] == 3


def test_a_run_is_listed_only_once_every_array_of_it_exists(tmp_path, monkeypatch):
    """config.json (what makes a run listed) is written after the analyses' arrays: a viewer
    that lists the run while it is being created never sees it without them."""
    from store import files
    from tasks import runs
    from tasks.analyses import STANDARD
    from tasks.config import preset

    cfg, root, seen = preset("smoke"), str(tmp_path), {}
    write_text = files.write_text

    def spy(path, text):
        if path == layout.config_path(root, cfg.run_id):
            seen.update(open_run(root, cfg.run_id, mode="r").analyses())
        write_text(path, text)

    monkeypatch.setattr(files, "write_text", spy)
    runs._prepare_run(root, cfg)
    assert set(seen) == {a.name for a in STANDARD}


def test_a_store_written_before_layers_opens_and_analyze_replaces_its_old_shaped_arrays(tmp_path):
    """A 1-layer store from before the ``layer`` dimension (no ``n_layers`` in its dims, per-layer
    variables without ``layer``) opens and reads as it is; making its variables replaces exactly
    the arrays whose dimensions differ, clears their analyses' done records and keeps the rest."""
    from dataclasses import replace

    from tasks.analyses import variables

    root = str(tmp_path)
    new = variables()
    old = [replace(v, dims=tuple(d for d in v.dims if d != "layer"),
                   sizes={"layer_matrix": 3} if "layer_matrix" in v.dims else {}) for v in new]
    st = create_run(root, "r1", {"p": 7}, EPOCHS, DIMS, old)
    del st.group["layer"], st.group["layer_label"]  # coordinates an old store never had
    frac = np.full((32, 3), 0.5, dtype=np.float32)
    st.write_epoch("neuron_freq_fraction", 10, frac)
    st.mark_done("neuron_frequencies", 10, "v")
    st.write_epoch("embedding_freq_norm", 10, np.ones(3, dtype=np.float32))
    st.mark_done("embedding_spectrum", 10, "v")

    before = open_run(root, "r1", mode="r")
    assert before.array_attrs("neuron_freq_fraction")["dims"] == ("epoch", "neuron", "freq")
    np.testing.assert_array_equal(before.read("neuron_freq_fraction", 10), frac)
    assert "layer" not in before.variables() and before.done_mask("neuron_frequencies").tolist()[1]

    open_run(root, "r1").ensure_variables(new)
    after = open_run(root, "r1", mode="r")
    assert after.array_attrs("neuron_freq_fraction")["dims"] == ("epoch", "layer", "neuron", "freq")
    assert after.read("layer").tolist() == [0] and after.sizes()["layer"] == 1
    assert np.isnan(after.read("neuron_freq_fraction", 10)).all()
    assert not after.done_mask("neuron_frequencies").any()  # cleared with its array
    assert after.done_mask("embedding_spectrum").tolist()[1]  # unchanged dims: data and record kept
    np.testing.assert_array_equal(after.read("embedding_freq_norm", 10), 1.0)
