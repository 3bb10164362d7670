"""``store.direct_read``: one epoch read straight from its chunk file is exactly what Zarr reads
(values, dtype, shape, fill values where nothing is written), damaged files raise, and every
layout or index it does not read exactly is left to Zarr."""

import os
import random

import numpy as np
import pytest
import zarr

from store import direct_read, layout
from store.run_store import create_run
from store.schema import Variable

DIMS = {"p": 7, "d_mlp": 32, "n_heads": 4, "num_epochs": 50}
EPOCHS = [0, 10, 20, 30, 49]
SHARDED = Variable("acts", ("epoch", "neuron", "a", "b"), "float16", "acts", "test", inner_chunk=8)
PLAIN = Variable("fractions", ("epoch", "neuron", "freq"), "float32", "fractions", "test")
COUNTS = Variable("counts", ("epoch", "neuron"), "int32", "counts", "test")


def _indices(n: int, rng: random.Random) -> list[tuple]:
    return [(), (0,), (n - 1,), (rng.randrange(n),), (np.int64(n // 2),), ([n - 1, 0, n // 2, n // 2],),
            (sorted(rng.sample(range(n), min(n, 6))),)]


def _reader_indices(reader: direct_read.EpochReader, rng: random.Random) -> list[tuple]:
    """The indices ``reader`` reads: a per-layer shard's are a layer, then rows within it."""
    if not reader.lead:
        return _indices(reader.shape[1], rng)
    return [(layer, *index) for layer in range(reader.shape[1]) for index in _indices(reader.shape[2], rng)]


@pytest.fixture
def store(tmp_path):
    st = create_run(str(tmp_path), "r1", {"p": 7}, EPOCHS, DIMS)
    st.ensure_variables([SHARDED, PLAIN, COUNTS])
    rng = np.random.default_rng(0)
    for epoch in EPOCHS[:3]:  # epochs 30 and 49 never written: they read as the fill value
        st.write_epoch("acts", epoch, rng.random((32, 7, 7)).astype(np.float16))
        st.write_epoch("fractions", epoch, rng.random((32, 4)).astype(np.float32))
        st.write_epoch("counts", epoch, rng.integers(-9, 9, 32).astype(np.int32))
    return st


def test_every_epoch_and_index_reads_as_zarr_reads_it(store):
    rng = random.Random(0)
    for name in ("acts", "fractions", "counts"):
        arr = store.array(name)
        reader = direct_read.reader(arr)
        assert reader is not None and reader.inner == (8 if name == "acts" else None)
        for i in range(len(EPOCHS)):
            for index in _indices(arr.shape[1], rng):
                got, want = reader.read(i, index), arr[(i, *index)]
                # one value: a 0-d array (Zarr gives one for a written chunk, a scalar otherwise)
                assert got.dtype == want.dtype and got.shape == np.shape(want)
                assert np.array_equal(got, want, equal_nan=True), (name, i, index)
                assert isinstance(got, np.ndarray) and got.flags.writeable  # a copy: the caller may keep or change it
        assert np.isnan(reader.read(4, ())).all() if name != "counts" else (reader.read(4, ()) == 0).all()


def test_a_shard_rounded_up_to_whole_inner_chunks_reads_as_zarr_reads_it(tmp_path):
    """20 neurons in inner chunks of 8: the epoch's shard holds 3 (24 rows, the last 4 padded)."""
    st = create_run(str(tmp_path), "r1", {"p": 7}, EPOCHS, {**DIMS, "d_mlp": 20})
    st.ensure_variables([SHARDED])
    arr = st.array("acts")
    assert arr.shards == (1, 24, 7, 7) and arr.chunks == (1, 8, 7, 7)
    values = np.random.default_rng(2).random((20, 7, 7)).astype(np.float16)
    st.write_epoch("acts", 10, values)
    reader = direct_read.reader(arr)
    assert reader is not None and reader.n_inner == 3
    rng = random.Random(2)
    for i in (1, 2):  # written, never written
        for index in _indices(20, rng):
            assert np.array_equal(reader.read(i, index), arr[(i, *index)], equal_nan=True), (i, index)
    assert np.array_equal(reader.read(1, ()), values) and reader.read(1, ([19],)).shape == (1, 7, 7)
    assert reader.read(1, (20,)) is None  # past the neurons (within the padding): left to Zarr, which raises


def test_the_run_store_reads_through_it_and_a_smoke_run_reads_the_same(smoke_run):
    root, cfg = smoke_run
    group = zarr.open_group(layout.store_path(root, cfg.run_id), mode="r")
    read = 0
    for name, arr in group.arrays():
        reader = direct_read.reader(arr)
        if reader is None:
            continue
        read += 1
        for i in (0, len(cfg.checkpoint_epochs) - 1):
            for index in _reader_indices(reader, random.Random(1)):
                assert np.array_equal(reader.read(i, index), arr[(i, *index)], equal_nan=True), (name, i, index)
    assert read >= 10 and direct_read.reader(group["neuron_activations"]).inner == 16


def test_a_per_layer_shard_reads_one_layers_rows_as_zarr_reads_them(tmp_path):
    """Three layers of 20 neurons in inner chunks of 8, one layer each: a layer's rows read
    straight from the epoch's shard (a layer never written reads as the fill value); the whole
    epoch, or a list of layers, is left to Zarr."""
    layered = Variable("acts", ("epoch", "layer", "neuron", "a", "b"), "float16", "acts", "test", inner_chunk=8)
    st = create_run(str(tmp_path), "r1", {"p": 7}, EPOCHS, {**DIMS, "d_mlp": 20, "n_layers": 3})
    st.ensure_variables([layered])
    arr = st.array("acts")
    assert arr.shards == (1, 3, 24, 7, 7) and arr.chunks == (1, 1, 8, 7, 7)
    values = np.random.default_rng(3).random((3, 20, 7, 7)).astype(np.float16)
    values[1] = np.nan  # layer 1: no inner chunk stored
    st.write_epoch("acts", 10, values)
    reader = direct_read.reader(arr)
    assert reader is not None and (reader.lead, reader.inner, reader.n_inner) == (1, 8, 3)
    rng = random.Random(3)
    for i in (1, 2):  # written, never written
        for index in _reader_indices(reader, rng):
            got, want = reader.read(i, index), arr[(i, *index)]
            assert got.shape == np.shape(want) and np.array_equal(got, want, equal_nan=True), (i, index)
    assert np.array_equal(reader.read(1, (2, 19)), values[2, 19])
    for index in [(), ([0, 1],), (3,), (0, 20), (0, slice(0, 2))]:
        assert reader.read(1, index) is None, index


def test_an_absent_inner_chunk_is_the_fill_value(store):
    """A shard holds only the inner chunks written; the others read as NaN (Zarr skips a chunk
    that is all fill value when it writes)."""
    values = np.random.default_rng(1).random((32, 7, 7)).astype(np.float16)
    values[8:16] = np.nan
    store.write_epoch("acts", 30, values)
    got = direct_read.reader(store.array("acts")).read(3, ())
    assert np.array_equal(got, values, equal_nan=True) and np.array_equal(got, store.array("acts")[3], equal_nan=True)


def test_a_damaged_shard_raises(store):
    reader = direct_read.reader(store.array("acts"))
    path = reader.path(1)
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF  # inside the index: its checksum fails
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        reader.read(1, (0,))
    for cut in (10, 0):  # shorter than an index; empty (Zarr would read this one as all NaN)
        open(path, "wb").write(bytes(data[:cut]))
        with pytest.raises(ValueError, match="truncated"):
            reader.read(1, (0,))


def test_a_damaged_chunk_raises(store):
    reader = direct_read.reader(store.array("fractions"))
    path = reader.path(2)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises((ValueError, RuntimeError)):
        reader.read(2, ())


def test_other_indices_and_layouts_are_left_to_zarr(store, tmp_path):
    reader = direct_read.reader(store.array("acts"))
    for index in [(slice(0, 4),), (0, 1), (32,), (-1,), ([],), ([0, 40],), (True,), (Ellipsis,)]:
        assert reader.read(0, index) is None, index
    assert reader.read(len(EPOCHS), ()) is None
    assert np.array_equal(store.read("acts", 10, slice(0, 4)), store.array("acts")[1, 0:4])  # Zarr's way
    other = zarr.create_array(str(tmp_path / "other"), shape=(4, 8), chunks=(2, 8), dtype="float32")
    assert direct_read.reader(other) is None  # two epochs a chunk
    gzip = zarr.create_array(str(tmp_path / "gzip"), shape=(4, 8), chunks=(1, 8), dtype="float32",
                             compressors=zarr.codecs.GzipCodec())
    assert direct_read.reader(gzip) is None
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(4, 8), chunks=(1, 8), dtype="float32",
                               compressors=zarr.codecs.ZstdCodec())
    assert direct_read.reader(memory) is None
    assert direct_read.reader(store.array("epoch")) is None  # one dimension
