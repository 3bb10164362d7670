"""The run store: one Zarr v3 group per run, and the verbs everything else uses.

create_run, open_run, list_runs; RunStore.ensure_variables, write_epoch, write_series,
mark_done, done_mask, read. Per-checkpoint arrays hold one epoch per chunk or shard, so tasks
writing different epochs never share a file; completion is a per-analysis, per-epoch record
(``<analysis>_done``, one element per chunk) written after the data, holding the analysis
version stamp. Missing chunks read as NaN (floats), never as plausible zeros.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.sync import sync

from store import direct_read, files, layout
from store.schema import SERIES_VARIABLES, Variable, coordinates, dim_sizes, fill_value, task_attributes
from tasks import problems
from tasks.problems.basis import Basis

CODE_VERSION = "0.1.0"
_COMPRESSOR = ZstdCodec(level=1)  # higher levels and shuffles bought nothing (DESIGN.md)


class StoreError(RuntimeError):
    """A store is missing, partial or does not match its run."""


def version_stamp(version: str) -> int:
    """A positive int64 that identifies an analysis version (0 means "not done")."""
    return int.from_bytes(hashlib.sha256(version.encode()).digest()[:8], "big") >> 1 or 1


def _create(group: zarr.Group, var: Variable, sizes: dict[str, int]) -> zarr.Array:
    shape = tuple({**sizes, **var.sizes}[d] for d in var.dims)
    if var.dims[0] == "epoch":
        chunks = (1, *shape[1:])
        shards = None
        if var.inner_chunk:  # the epoch's shard holds whole inner chunks: its length is rounded up to them
            lead = 2 if var.dims[1:2] == ("layer",) else 1  # per layer: inner chunks along the axis after it
            inner = min(var.inner_chunk, shape[lead]) or 1
            rounded = -(-shape[lead] // inner) * inner
            shards = (1, *shape[1:lead], rounded, *shape[lead + 1:])
            chunks = (1, *(1 for _ in shape[1:lead]), inner, *shape[lead + 1:])
    else:
        chunks, shards = (min(s, 4096) or 1 for s in shape), None
        chunks = tuple(chunks)
    attrs = {"long_name": var.long_name, "description": var.description, **var.attrs}
    if var.units:
        attrs["units"] = var.units
    if var.hook:
        attrs["hook"] = var.hook
    labels = [label for dim, label in (("layer", "layer_label"), ("freq", "freq_label")) if dim in var.dims]
    if labels:
        attrs["coordinates"] = " ".join(labels)
    return group.create_array(
        var.name, shape=shape, chunks=chunks, shards=shards, dtype=var.dtype,
        fill_value=fill_value(var.dtype), compressors=_COMPRESSOR, dimension_names=var.dims,
        attributes=attrs,
    )


def _reshaped(arr: zarr.Array, var: Variable) -> bool:
    """Whether a stored array has other dimensions than ``var``, or other sizes of ``var``'s own."""
    dims = tuple(arr.metadata.dimension_names or ())
    return dims != var.dims or any(arr.shape[i] != var.sizes[d] for i, d in enumerate(dims) if d in var.sizes)


@dataclass
class RunStore:
    """Handle on one run's store. Cheap to open; safe to share between threads that write
    disjoint epochs."""

    root: str
    run_id: str
    group: zarr.Group
    _arrays: dict = field(default_factory=dict, repr=False)

    def array(self, name: str) -> zarr.Array:
        """The array handle, opened once per RunStore (metadata is parsed once)."""
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    # --- description ---
    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def config(self) -> dict:
        return self.group.attrs["config"]

    @property
    def epochs(self) -> np.ndarray:
        """Checkpoint epochs in increasing order. Along the arrays' ``epoch`` axis they stand in
        the order they were added (epochs inserted by a zoom come after those of the schedule;
        the ``epoch`` coordinate labels each position); every read here returns epoch order."""
        raw, order = self._placement()
        return raw if order is None else raw[order]

    def _placement(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(the epoch coordinate as stored, the permutation that sorts it or None if sorted)``,
        read once per handle. Only the first ``dim_sizes["epoch"]`` positions count: a grow
        killed between resizing the coordinate and recording the size leaves no phantom epochs."""
        if "__placement__" not in self._arrays:
            raw = self.array("epoch")[: self.sizes()["epoch"]]
            ordered = bool(np.all(raw[1:] > raw[:-1]))
            self._arrays["__placement__"] = (raw, None if ordered else np.argsort(raw, kind="stable"))
        return self._arrays["__placement__"]

    def index(self, epoch: int) -> int:
        """Position of a checkpoint epoch along the ``epoch`` axis (looked up once per handle)."""
        if "__index__" not in self._arrays:
            self._arrays["__index__"] = {int(e): i for i, e in enumerate(self._placement()[0])}
        try:
            return self._arrays["__index__"][int(epoch)]
        except KeyError:
            raise StoreError(f"epoch {epoch} is not a checkpoint of run {self.run_id}") from None

    def _in_epoch_order(self, name: str, values: np.ndarray) -> np.ndarray:
        """A whole array read along its first dimension, put in epoch order if that is ``epoch``."""
        raw, order = self._placement()
        if tuple(self.array(name).metadata.dimension_names or ())[:1] != ("epoch",):
            return values
        return values[: len(raw)] if order is None else values[: len(raw)][order]

    def dims(self) -> dict[str, int]:
        """``p, d_mlp, n_heads, num_epochs``: what the dimension sizes derive from."""
        cfg = self.group.attrs["config"]
        return self.group.attrs.get("dims") or {  # stores written before "dims" was recorded
            "p": cfg["p"], "d_mlp": cfg["model"]["d_mlp"], "n_heads": cfg["model"]["n_heads"],
            "num_epochs": cfg["num_epochs"], "n_layers": cfg["model"].get("n_layers", 1)}

    @property
    def task(self) -> str:
        """The run's task: the ``task`` attribute; a store written before tasks is ``add``."""
        return str(self.group.attrs.get("task") or self.config.get("task", "add"))

    def basis(self) -> Basis:
        """The basis of the run's Fourier quantities (the task's, at the run's p)."""
        return problems.get(self.task).basis(self.dims()["p"])

    def sizes(self) -> dict[str, int]:
        return dict(self.group.attrs["dim_sizes"])

    def variables(self) -> list[str]:
        return sorted(name for name, _ in self.group.arrays())

    def has(self, name: str) -> bool:
        return name in self.group

    def array_attrs(self, name: str) -> dict:
        arr = self.group[name]
        return {**arr.attrs, "dims": tuple(arr.metadata.dimension_names or ())}

    # --- writing (single writer per epoch) ---
    def ensure_variables(self, variables: list[Variable]) -> None:
        """Create the arrays that do not exist yet, and replace those stored with other
        dimensions (a store written before the ``layer`` dimension) or other sizes of the
        dimensions only they have (``Variable.sizes``: e.g. the LLC's chains and draws) together
        with their analysis's done record, which then reads "not done" (one writer, before any
        fan-out). Those sizes join the store's ``dim_sizes``."""
        self._ensure_coordinates()
        own = {d: n for var in variables for d, n in var.sizes.items()}
        if own:
            self.group.attrs["dim_sizes"] = {**self.sizes(), **own}
        sizes = self.sizes()
        for var in variables:
            if var.name in self.group and _reshaped(self.group[var.name], var):
                del self.group[var.name]
                self._arrays.pop(var.name, None)
                done = f"{var.attrs.get('analysis')}_done"
                if done in self.group:
                    self.group[done][:] = 0
            if var.name not in self.group:
                _create(self.group, var, sizes)
            elif any(self.group[var.name].attrs.get(k) != v for k, v in var.attrs.items()):
                self.group[var.name].attrs.update(var.attrs)  # labels added or changed since it was made

    def _ensure_coordinates(self, epochs: list[int] | None = None) -> None:
        """Write the coordinate arrays (and sizes) this store lacks, and the task's root
        attributes: a store written by an older version gains the dimensions that newer analyses
        use, and an ``add`` store its task and basis."""
        d, basis, problem = self.dims(), self.basis(), problems.get(self.task)
        epochs = list(self.epochs) if "epoch" in self.group else epochs
        if "task_formula" not in self.group.attrs:
            self.group.attrs.update(task_attributes(problem.name, problem.formula, basis))
        layers = d.get("n_layers", 1)  # a store written before depth was a knob: 1 layer
        self.group.attrs["dim_sizes"] = {**self.group.attrs.get("dim_sizes", {}),  # and variables' own
                                         **dim_sizes(basis, d["p"], d["d_mlp"], d["n_heads"], len(epochs),
                                                     d["num_epochs"], layers)}
        coords = coordinates(basis, problem.formula, d["p"], d["d_mlp"], d["n_heads"], epochs, d["num_epochs"], layers)
        for name, (cdims, values, attrs) in coords.items():
            if name in self.group:
                continue
            text = values.dtype.kind == "U"
            arr = self.group.create_array(name, shape=values.shape, dtype=str if text else values.dtype,
                                          dimension_names=cdims, attributes=attrs,
                                          fill_value=None if text else 0)
            arr[:] = values

    def write_epoch(self, name: str, epoch: int, values: np.ndarray) -> None:
        self.array(name)[self.index(epoch)] = values

    def write_series(self, series: dict[str, np.ndarray], start: int, stop: int) -> None:
        """Write epochs ``start .. stop-1`` of the training series (the trainer is the only writer)."""
        for name, values in series.items():
            self.group[name][start:stop] = values[start:stop]
        self.group.attrs["trained_through"] = int(stop - 1)

    def mark_done(self, analysis: str, epoch: int, version: str) -> None:
        """Record that ``analysis`` at ``epoch`` is written; call after its data."""
        self.array(f"{analysis}_done")[self.index(epoch)] = version_stamp(version)

    def is_done(self, analysis: str, epoch: int, version: str) -> bool:
        """One checkpoint's record (reads one chunk, not the whole mask)."""
        name = f"{analysis}_done"
        return name in self.group and int(self.array(name)[self.index(epoch)]) == version_stamp(version)

    def done_mask(self, analysis: str, version: str | None = None) -> np.ndarray:
        """Bool per checkpoint in epoch order: done (at ``version``, if given; at any version
        otherwise)."""
        name = f"{analysis}_done"
        if name not in self.group:
            return np.zeros(len(self.epochs), dtype=bool)
        if version is None and not zarr.config.get("array.write_empty_chunks"):
            return self._in_epoch_order(name, self._stored_chunks(self.array(name)))
        stamps = self._in_epoch_order(name, self.array(name)[:])
        return stamps == version_stamp(version) if version else stamps != 0

    @staticmethod
    def _stored_chunks(arr: zarr.Array) -> np.ndarray:
        """Bool per element of a one-element-per-chunk array: whether its chunk is stored. Zarr
        stores no chunk that holds only the fill value, so for a done record this is "done at
        some version", from one listing instead of a read per checkpoint (~80 ms for 500 here)."""
        where = arr.store_path

        async def listing() -> set[str]:
            return {key async for key in where.store.list_prefix(f"{where.path}/")}

        stored = sync(listing())
        encode = arr.metadata.chunk_key_encoding.encode_chunk_key
        return np.array([f"{where.path}/{encode((i,))}" in stored for i in range(arr.shape[0])], dtype=bool)

    def analyses(self) -> dict[str, list[str]]:
        """The analyses this store records (an ``<analysis>_done`` array each), with what each
        needs beyond its checkpoint (``[]``: it runs as checkpoints land)."""
        return {name.removesuffix("_done"): list(self.array(name).attrs.get("needs", []))
                for name in self.variables() if name.endswith("_done")}

    def write_key_frequencies(self, freqs: list[int], **attrs) -> None:
        """The run's key frequencies (k, 1-based) as a mask over ``freq``, with the rule that
        chose them in the attributes (one writer, before the analyses that use them fan out)."""
        if "key_freq_mask" not in self.group:
            _create(self.group, Variable("key_freq_mask", ("freq",), "int8", "key frequency",
                                         "1 where the frequency is one of the run's key frequencies"),
                    self.sizes())
        mask = np.zeros(self.sizes()["freq"], dtype="int8")
        mask[np.asarray(freqs, dtype=int) - 1] = 1
        arr = self.group["key_freq_mask"]
        arr[:] = mask
        arr.attrs.update({**attrs, "key_freqs": [int(k) for k in freqs]})

    def key_frequencies(self) -> list[int] | None:
        """The key frequencies, or None when they have not been chosen yet."""
        if "key_freq_mask" not in self.group:
            return None
        return list(self.group["key_freq_mask"].attrs.get("key_freqs", [])) or None

    # --- reading ---
    def read(self, name: str, epoch: int | None = None, *index) -> np.ndarray:
        """Whole array (in epoch order), or one epoch's slice (optionally indexed further, e.g. one
        neuron). One
        epoch of a local store is read from its chunk file directly where ``store.direct_read``
        reads that layout (~4x faster than through Zarr for one neuron's map); else by Zarr."""
        arr = self.array(name)
        if epoch is None:
            return self._in_epoch_order(name, arr[:])
        i = self.index(epoch)
        key = ("direct", name)
        reader = self._arrays.get(key, False)
        if reader is False:
            reader = self._arrays[key] = direct_read.reader(arr)
        fast = reader.read(i, index) if reader is not None else None
        return fast if fast is not None else arr[(i, *index)]

    def series(self) -> dict[str, np.ndarray]:
        return {v.name: self.group[v.name][:] for v in SERIES_VARIABLES}


def _zarr_store(path: str, read_only: bool):
    """A local path as is; a URL as an fsspec-backed Zarr store with the project's options."""
    if not files.is_url(path):
        return path
    return zarr.storage.FsspecStore.from_url(path, storage_options=files.storage_options(path),
                                             read_only=read_only)


def _open_group(path: str, mode: str) -> zarr.Group:
    """Readers use consolidated metadata where it was written (one read instead of one per
    array); a writer first removes it, since arrays it adds would be hidden from readers."""
    store = _zarr_store(path, read_only=mode == "r")
    group = zarr.open_group(store=store, mode=mode, zarr_format=3, use_consolidated=None)
    if mode != "r" and group.metadata.consolidated_metadata is not None:
        group = zarr.open_group(store=store, mode=mode, zarr_format=3, use_consolidated=False)
        group.attrs.put(dict(group.attrs))  # rewrites the root metadata without the copy
    return group


def remove_stale_partials(root: str, run_id: str, older_than_s: float = 60.0) -> list[str]:
    """Delete the ``*.partial`` files a killed writer left in the store (Zarr writes a chunk to
    a temporary file, then renames it). Only files older than ``older_than_s``: a live writer's
    temporary file exists for milliseconds, so this never pulls one from under a running task.
    Returns the paths removed. (Object stores leave no partial files.)"""
    path = layout.store_path(root, run_id)
    if files.is_url(path) or not os.path.isdir(path):
        return []
    now, removed = time.time(), []
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            if name.endswith(".partial") and now - os.path.getmtime(full) > older_than_s:
                os.remove(full)
                removed.append(full)
    return removed


def consolidate(root: str, run_id: str) -> None:
    """Write every array's metadata into the root ``zarr.json`` so that a reader opens the store
    in one request. Only while no writer is active (a finished run): the next writer removes it."""
    path = layout.store_path(root, run_id)
    with warnings.catch_warnings():  # "not part of the Zarr v3 specification yet": known, wanted
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(_zarr_store(path, read_only=False), zarr_format=3)


def is_consolidated(root: str, run_id: str) -> bool:
    return _open_group(layout.store_path(root, run_id), "r").metadata.consolidated_metadata is not None


def create_run(root: str, run_id: str, config: dict, checkpoint_epochs, dims: dict,
               variables: tuple[Variable, ...] = ()) -> RunStore:
    """Create a run's folder, store skeleton (coordinates, series and ``variables``, e.g. the
    analyses' arrays) and ``config.json``.

    ``dims`` gives ``p, d_mlp, n_heads, num_epochs``. ``config.json`` is written last: a run
    exists once its config does, so a creation killed half-way leaves no run, and its
    leftover store is removed when the run is created again. Refuses to overwrite a run.
    (Callers serialise creation per runs root: ``tasks.lock.layout_lock``.)
    """
    path = layout.store_path(root, run_id)
    if files.exists(layout.config_path(root, run_id)):
        raise StoreError(f"run {run_id} already exists under {root}")
    if files.exists(path):  # from a creation killed before its config was written
        files.rmtree(path)
    files.makedirs(layout.run_dir(root, run_id))
    group = _open_group(path, "w-")
    store = RunStore(root, run_id, group)
    _write_skeleton(store, config, list(checkpoint_epochs), dims)
    store.ensure_variables(list(variables))  # before the config: a listed run has all its arrays
    files.write_text(layout.config_path(root, run_id), json.dumps(config, indent=2, sort_keys=True))
    return store


def _write_skeleton(store: RunStore, config: dict, epochs: list[int], dims: dict) -> None:
    store.group.attrs.update({
        "run_id": store.run_id, "config": config, "code_version": CODE_VERSION, "dims": dims,
        "trained_through": -1,
        "conventions": "epoch e = model after e optimiser steps; "
                       "<analysis>_done != 0 marks an analysed epoch (the value stamps the version)",
    })
    store._ensure_coordinates(epochs)
    store.ensure_variables(list(SERIES_VARIABLES))


def open_run(root: str, run_id: str, mode: str = "r+") -> RunStore:
    path = layout.store_path(root, run_id)
    if not files.isfile(f"{path}/zarr.json"):
        raise StoreError(f"run {run_id} has no store under {root}")
    try:
        group = _open_group(path, mode)
    except Exception as exc:  # zarr raises several types for damaged metadata
        raise StoreError(f"store of run {run_id} is unreadable ({exc})") from exc
    if "epoch" not in group or "config" not in group.attrs:
        raise StoreError(f"store of run {run_id} is partial (no skeleton)")
    return RunStore(root, run_id, group)


def list_runs(root: str) -> list[str]:
    """Runs under ``root`` with a config and a store, sorted by id."""
    return [r for r in layout.list_run_ids(root) if files.isfile(f"{layout.store_path(root, r)}/zarr.json")]


def grow(store: RunStore, config: dict, checkpoint_epochs, num_epochs: int) -> list[int]:
    """Give a run the checkpoints of ``checkpoint_epochs`` it lacks (an extension's later ones,
    or a zoom's inserted between existing ones) and ``num_epochs`` epochs of series, in one
    place, by the one writer, before new analysis tasks fan out. New epochs take new positions
    at the end of the ``epoch`` axis, so nothing written moves or changes; readers here see
    epoch order (``RunStore.epochs``). The epoch count in the root attributes is the commit
    point and ``config.json`` follows it: a grow killed at any moment, run again, completes.
    Returns the epochs added."""
    placed = [int(e) for e in store._placement()[0]]
    added = sorted(set(int(e) for e in checkpoint_epochs) - set(placed))  # existing ones all stay
    sizes = store.sizes()
    sizes.update({"epoch": len(placed) + len(added), "series_epoch": num_epochs})
    for name, arr in store.group.arrays():
        dims = tuple(arr.metadata.dimension_names or ())
        if dims and dims[0] in ("epoch", "series_epoch") and name not in ("epoch", "series_epoch"):
            arr.resize((sizes[dims[0]], *arr.shape[1:]))
    for name, values in (("epoch", np.asarray(placed + added)), ("series_epoch", np.arange(num_epochs))):
        store.group[name].resize(values.shape)
        store.group[name][:] = values
    dims = {**store.dims(), "num_epochs": num_epochs}
    store.group.attrs.update({"dim_sizes": sizes, "config": config, "dims": dims})
    store._arrays.clear()  # handles opened before the resize know the old shapes
    files.write_text(layout.config_path(store.root, store.run_id), json.dumps(config, indent=2, sort_keys=True))
    return added
