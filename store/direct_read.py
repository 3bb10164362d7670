"""One checkpoint's slice of a per-epoch array, read straight from its chunk file.

Zarr's reader goes through an event loop in another thread and a thread pool for decoding:
reading one neuron's (a, b) map took ~3.5 ms here, ~0.8 ms of it the work itself (one file,
two reads, one zstd frame). The viewer reads one epoch of one array at a time, from local
files, in exactly the layouts this project writes (``store.run_store._create``):

- one epoch per chunk: ``c/<i>/0/...`` holds the epoch as one zstd frame of little-endian
  values, chunk shape ``(1, *shape[1:])``;
- one epoch per shard: the same file holds the epoch's inner chunks (along axis 1; for a
  per-layer array, along axis 2 within each layer, one layer per chunk), each a
  zstd frame, and at its end the shard index (``(offset, nbytes)`` as little-endian uint64
  per inner chunk, all ones where a chunk is absent) with its CRC32C (Zarr v3's
  ``sharding_indexed`` codec, ``index_location: end``). Where axis 1 is not a multiple of
  the inner chunk, the shard is rounded up to one (its last inner chunk is padded with the
  fill value, as Zarr pads a chunk at an array's edge).

``reader(array)`` returns an ``EpochReader`` only when the array's metadata is exactly one of
these (local store, default chunk keys, these codecs, a fixed-size numeric dtype, on a little-endian
machine); anything else, and any index but none, one int or a list of ints along axis 1 (for a
per-layer shard: one int layer, then none, one int or a list of ints along axis 2), is left to
Zarr. What is read is what Zarr reads: a missing file or inner chunk is the fill value, a
damaged index raises (so does an empty shard file, which Zarr, never writing one, would read
as all fill values: a file cut short by a crash is not an unwritten epoch). Each read opens
the file once and reads it through that one handle, so a writer replacing the file (Zarr
writes a temporary file and renames it) is seen whole or not at all.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import google_crc32c
import numpy as np
import zarr
from numcodecs import Zstd

_ZSTD = Zstd()
_ABSENT = np.uint64(2**64 - 1)
_LITTLE = {"name": "bytes", "configuration": {"endian": "little"}}
ALL = ()  # the rows wanted: the whole epoch (else one int, or a list of ints)


def _is_zstd(codec: dict) -> bool:
    return codec.get("name") == "zstd"


def _plain(codecs: list[dict]) -> bool:
    """``[bytes (little-endian), zstd]``: the only codecs this reader decodes."""
    return len(codecs) == 2 and codecs[0] == _LITTLE and _is_zstd(codecs[1])


@dataclass(frozen=True)
class EpochReader:
    """Reads epoch ``i`` of one array from ``<folder>/c/<i>/0/...``."""

    folder: str
    shape: tuple[int, ...]  # the whole array's
    dtype: np.dtype  # little-endian, this machine's order
    fill: object
    inner: int | None  # inner chunk length along the rows' axis (sharded), or None (one chunk per epoch)
    lead: int = 0  # 1: a per-layer shard, one layer per inner chunk along axis 1, rows along axis 2

    @property
    def n_inner(self) -> int:
        """Inner chunks per layer of a shard (the last one padded where the rows' axis is not a
        multiple of them)."""
        return -(-self.shape[1 + self.lead] // self.inner)

    def path(self, i: int) -> str:
        return os.path.join(self.folder, "c", str(i), *("0" * (len(self.shape) - 1)))

    def read(self, i: int, index: tuple) -> np.ndarray | None:
        """Epoch ``i`` (``index`` = ``()``), or one row / a list of rows along axis 1 of it (a
        per-layer shard: ``(layer, *rows)``, one layer's rows along axis 2); None for any other
        index (the caller asks Zarr)."""
        layer = 0
        if self.lead:
            if not index or _rows(index[:1], self.shape[1]) is None or isinstance(index[0], list):
                return None
            layer, index = int(index[0]), index[1:]
        rows = _rows(index, self.shape[1 + self.lead])
        if rows is None or not 0 <= i < self.shape[0]:
            return None
        try:
            f = open(self.path(i), "rb")
        except FileNotFoundError:
            return self._filled(rows)
        with f:
            if self.inner is None:
                epoch = self._decode(f.read(), self.shape[1:])
                return epoch.copy() if rows is ALL else _take(epoch, rows)
            return self._from_shard(f, i, rows, layer)

    def _from_shard(self, f, i: int, rows, layer: int) -> np.ndarray:
        n = self.n_inner
        entries = n * (self.shape[1] if self.lead else 1)  # every layer's inner chunks, in order
        size = os.fstat(f.fileno()).st_size
        data_end = size - 16 * entries - 4  # the chunks lie before the index and its checksum
        if data_end < 0:
            raise ValueError(f"shard {self.path(i)} is truncated ({size} bytes)")
        f.seek(data_end)
        raw = f.read(16 * entries + 4)
        if google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise ValueError(f"shard {self.path(i)}: its index fails its checksum (damaged file)")
        table = np.frombuffer(raw[:-4], dtype="<u8").reshape(entries, 2)[layer * n:(layer + 1) * n]
        axis, tail = self.shape[1 + self.lead], self.shape[2 + self.lead:]
        wanted = range(axis) if rows is ALL else rows if isinstance(rows, list) else [rows]
        blocks: dict[int, np.ndarray] = {}
        for chunk in sorted({r // self.inner for r in wanted}):
            offset, nbytes = table[chunk]
            if offset == _ABSENT and nbytes == _ABSENT:
                blocks[chunk] = np.full((self.inner, *tail), self.fill, dtype=self.dtype)
                continue
            if int(offset) + int(nbytes) > data_end:
                raise ValueError(f"shard {self.path(i)}: chunk {chunk} lies beyond its data (damaged file)")
            f.seek(int(offset))
            blocks[chunk] = self._decode(f.read(int(nbytes)), (self.inner, *tail))
        if rows is ALL:
            return np.concatenate([blocks[c] for c in range(n)])[:axis]
        return np.stack([blocks[r // self.inner][r % self.inner] for r in rows]) if isinstance(rows, list) \
            else np.array(blocks[rows // self.inner][rows % self.inner])

    def _decode(self, frame: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """A chunk's values (a read-only view of the decoded bytes: callers return copies)."""
        values = np.frombuffer(_ZSTD.decode(frame), dtype=self.dtype)
        if values.size != int(np.prod(shape)):
            raise ValueError(f"chunk of {values.size} values where {shape} was expected (damaged file)")
        return values.reshape(shape)

    def _filled(self, rows) -> np.ndarray:
        whole = self.shape[1 + self.lead:]
        shape = whole if rows is ALL else (len(rows), *whole[1:]) if isinstance(rows, list) else whole[1:]
        return np.full(shape, self.fill, dtype=self.dtype)


def _rows(index: tuple, n: int):
    """``ALL``, an int row or a list of int rows along axis 1 (in range), else None."""
    if index == ():
        return ALL
    if len(index) != 1:
        return None
    (sel,) = index
    if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
        return int(sel) if 0 <= sel < n else None
    if isinstance(sel, list) and sel and all(isinstance(r, (int, np.integer)) and not isinstance(r, bool)
                                             and 0 <= r < n for r in sel):
        return [int(r) for r in sel]
    return None


def _take(epoch: np.ndarray, rows) -> np.ndarray:
    return np.array(epoch[rows])  # a copy; a 0-d array for one value (as Zarr gives for a written chunk)


def reader(arr: zarr.Array) -> EpochReader | None:
    """An ``EpochReader`` for ``arr`` when its layout is one this module reads exactly."""
    store = arr.store_path.store
    if not isinstance(store, zarr.storage.LocalStore) or arr.ndim < 2 or sys.byteorder != "little":
        return None
    meta = json.loads(json.dumps(arr.metadata.to_dict(), default=str))  # tuples -> lists
    dtype = np.dtype(arr.dtype)
    shape = tuple(arr.shape)
    grid = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
    if (meta.get("zarr_format") != 3 or dtype.kind not in "fiub" or dtype.byteorder == ">"
            or meta.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}}
            or meta.get("chunk_grid", {}).get("name") != "regular" or not isinstance(grid, list)
            or len(grid) != len(shape) or grid[0] != 1):
        return None
    codecs = meta.get("codecs") or []
    inner, lead = None, 0
    if len(codecs) == 1 and codecs[0].get("name") == "sharding_indexed":
        conf = codecs[0].get("configuration", {})
        chunk = list(conf.get("chunk_shape", []))
        if not (_plain(conf.get("codecs", [])) and conf.get("index_location", "end") == "end"
                and conf.get("index_codecs") == [_LITTLE, {"name": "crc32c"}] and len(chunk) == len(shape)):
            return None
        lead = next((n for n in (0, 1) if _one_shard_per_epoch(shape, grid, chunk, n)), None)
        if lead is None:
            return None  # (one shard per epoch: its inner chunks cover the rows' axis, the last one padded)
        inner = chunk[1 + lead]
    elif not _plain(codecs) or grid[1:] != list(shape[1:]):
        return None
    folder = os.path.join(str(store.root), *arr.store_path.path.split("/"))
    return EpochReader(folder, shape, dtype, arr.fill_value, inner, lead)


def _one_shard_per_epoch(shape: tuple[int, ...], grid: list[int], chunk: list[int], lead: int) -> bool:
    """Whether the shard ``grid`` holds one whole epoch in inner chunks ``chunk`` of one entry
    along each of the ``lead`` axes after the epoch's (a per-layer array's layer) and whole
    along the axes after the rows' axis ``1 + lead``, which they cover (the last one padded)."""
    rows = 1 + lead
    return (len(shape) > rows and chunk[:rows] == [1] * rows and grid[1:rows] == list(shape[1:rows])
            and grid[rows + 1:] == list(shape[rows + 1:]) == chunk[rows + 1:]
            and 0 < chunk[rows] and grid[rows] == -(-shape[rows] // chunk[rows]) * chunk[rows])
