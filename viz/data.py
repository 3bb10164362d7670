"""Reads for the viewer: small keys (run id, variable, epoch) in, numpy out. Nothing is
recomputed here; labels come from the store. Analysed epochs are immutable, so their reads are
cached; the training series are re-read (a live run grows them)."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import numpy as np

from store import layout
from store.run_store import RunStore, StoreError, list_runs, open_run
from tasks.problems import PROBLEMS

# What reading a store that vanished or is damaged raises: the run's folder deleted (StoreError,
# OSError), an array's metadata missing (KeyError), a chunk truncated (Zarr's codecs raise
# RuntimeError or ValueError). The viewer shows these as a message in place.
READ_ERRORS = (StoreError, KeyError, OSError, ValueError, RuntimeError)


def runs_root() -> str:
    return layout.absolute(layout.runs_root())  # a local folder, or a URL such as s3://bucket/runs


def runs(root: str) -> list[str]:
    return list_runs(root)


@functools.lru_cache(maxsize=64)
def _store(root: str, run_id: str) -> RunStore:
    return open_run(root, run_id, mode="r")


def store(root: str, run_id: str) -> RunStore:
    return _store(root, run_id)


def _fresh_for(seconds: float):
    """Cache a read of a growing run for ``seconds`` (one page build reads it several times);
    ``fresh=True`` reads anew (the periodic refresh of a live run)."""
    def wrap(fn):
        cache: dict = {}

        @functools.wraps(fn)
        def read(*args, fresh: bool = False):
            hit = cache.get(args)
            if not fresh and hit is not None and time.monotonic() - hit[0] < seconds:
                return hit[1]
            value = fn(*args)
            cache[args] = (time.monotonic(), value)
            return value
        read.cache_clear = cache.clear
        return read
    return wrap


_done: dict[tuple[str, str, str], set[int]] = {}
_done_lock = threading.Lock()  # sessions and the spare page's builder (``viz.spare``) read at once


def done_epochs(root: str, run_id: str, analysis: str, among: list[int] | None = None) -> list[int]:
    """Checkpoint epochs (of ``among``, default all) with ``analysis``'s done record. A record is
    written after its data and stays, so only the epochs not seen done before are read (one
    chunk each, or the whole record at once when many, ``RunStore.done_mask``): a finished run
    costs nothing on the periodic refresh."""
    st = store(root, run_id)
    if not st.has(f"{analysis}_done"):
        return []
    with _done_lock:
        seen = _done.setdefault((root, run_id, analysis), set())
        todo = [e for e in ([int(e) for e in st.epochs] if among is None else among) if e not in seen]
    if len(todo) > 16:  # a run opened: the whole record at once (which of its chunks are stored)
        found = {int(e) for e in st.epochs[st.done_mask(analysis)]}
    else:
        found = {e for e in todo if int(st.read(f"{analysis}_done", e)) != 0}
    with _done_lock:  # read outside it: the refresh does not wait behind another thread's read
        seen.update(found)
        return sorted(seen if among is None else seen & set(among))


@functools.lru_cache(maxsize=64)
def checkpoint_analyses(root: str, run_id: str) -> tuple[str, ...]:
    """The analyses the run's store records that run as checkpoints land (every recorded one
    but those that wait for something, such as the key frequencies chosen at the end)."""
    return tuple(name for name, needs in store(root, run_id).analyses().items() if not needs)


def analysed_epochs(root: str, run_id: str) -> list[int]:
    """Checkpoint epochs with the done record of every analysis in ``checkpoint_analyses``."""
    epochs = None
    for name in checkpoint_analyses(root, run_id):
        epochs = done_epochs(root, run_id, name, epochs)
    return epochs or []


def regrown(root: str, run_id: str) -> bool:
    """Drop the cached handles and reads when the run's store has gained epochs since its handle
    was opened (a zoom inserted some, or the run was extended); True if it had."""
    fresh = open_run(root, run_id, mode="r").sizes()["epoch"]
    if fresh == store(root, run_id).sizes()["epoch"]:
        return False
    forget()
    return True


def trained_through(root: str, run_id: str) -> int:
    """The last epoch whose training series are stored, read anew (the cached handle keeps
    the root attributes it opened with; a live run's trainer updates them)."""
    return int(open_run(root, run_id, mode="r").attrs.get("trained_through", -1))


@_fresh_for(1.0)
def series(root: str, run_id: str) -> dict[str, np.ndarray]:
    return store(root, run_id).series()


@functools.lru_cache(maxsize=4096)
def epoch_slice(root: str, run_id: str, name: str, epoch: int, *index) -> np.ndarray:
    """One analysed epoch of a variable (optionally indexed further); read-only."""
    out = np.asarray(store(root, run_id).read(name, epoch, *index))
    out.setflags(write=False)
    return out


def layered(root: str, run_id: str, name: str) -> bool:
    """Whether variable ``name`` has a ``layer`` dimension (right after ``epoch``)."""
    dims = describe(root, run_id, name)["dims"]
    return len(dims) > 1 and dims[1] == "layer"


def at_layer(root: str, run_id: str, name: str, layer: int) -> tuple[int, ...]:
    """The index that picks ``layer`` of variable ``name`` after its epoch: ``(layer,)`` where it
    has a ``layer`` dimension, ``()`` where it has none (a variable that is not per layer, or a
    1-layer store written before layers were a dimension: its only layer is layer 0)."""
    return (int(layer),) if layered(root, run_id, name) else ()


def n_layers(root: str, run_id: str) -> int:
    """The model's depth: the store's ``layer`` size, else its config's ``n_layers``, else 1."""
    st = store(root, run_id)
    return int(st.sizes().get("layer") or st.config.get("model", {}).get("n_layers") or 1)


def layer_slice(root: str, run_id: str, name: str, epoch: int, layer: int, *index) -> np.ndarray:
    """One analysed epoch of a variable at one layer (only that layer's slice is read; a
    variable without a ``layer`` dimension is read whole); read-only and cached."""
    return epoch_slice(root, run_id, name, epoch, *at_layer(root, run_id, name, layer), *index)


@functools.lru_cache(maxsize=256)
def neuron_maps(root: str, run_id: str, epoch: int, neurons: tuple[int, ...], layer: int = 0) -> np.ndarray:
    """Several neurons' (a, b) activation maps at one epoch and layer, ``(len(neurons), n, n)``
    in the stored dtype, in one read (only the chunks holding them are decompressed); read-only."""
    at = at_layer(root, run_id, "neuron_activations", layer)
    out = np.asarray(store(root, run_id).read("neuron_activations", epoch, *at, list(neurons)))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=512)
def value_range(root: str, run_id: str, name: str, epochs: tuple[int, ...], *index) -> tuple[float, float]:
    """``(min, max)`` of one slice of a variable over the given epochs (a colour range that
    keeps epochs comparable); every epoch's slice lands in the read cache on the way."""
    lo, hi = np.inf, -np.inf
    for epoch in epochs:
        values = epoch_slice(root, run_id, name, epoch, *index)
        if values.size and not np.isnan(values).all():
            lo, hi = min(lo, float(np.nanmin(values))), max(hi, float(np.nanmax(values)))
    return (lo, hi) if lo <= hi else (0.0, 1.0)


@functools.lru_cache(maxsize=64)
def top_by_variance(root: str, run_id: str, epoch: int, k: int, layer: int = 0) -> tuple[int, ...]:
    """The ``k`` neurons of ``layer`` whose (a, b) map varies most at ``epoch``, highest first."""
    acts = layer_slice(root, run_id, "neuron_activations", epoch, layer)  # (neuron, a, b) float16
    var = acts.reshape(len(acts), -1).astype(np.float32).var(axis=1)
    return tuple(int(n) for n in np.argsort(-var, kind="stable")[:k])


def per_epoch_variables(root: str, run_id: str) -> dict[str, dict]:
    """Every per-checkpoint variable an analysis wrote into the store, with its attributes
    (``dims``, ``long_name``, ``description``, ``analysis``), sorted by analysis, then name."""
    st = store(root, run_id)
    found = []
    for name in st.variables():
        attrs = describe(root, run_id, name)
        if attrs.get("analysis") and attrs["dims"][:1] == ("epoch",) and not name.endswith("_done"):
            found.append((attrs["analysis"], name, attrs))
    return {name: attrs for _, name, attrs in sorted(found, key=lambda f: f[:2])}


@functools.lru_cache(maxsize=256)
def coord(root: str, run_id: str, name: str) -> np.ndarray:
    values = np.asarray(store(root, run_id).read(name))
    if values.dtype.kind in "TO":  # Zarr's variable-length strings -> plain numpy str
        values = np.asarray(values.tolist(), dtype=str)
    return values


def config(root: str, run_id: str) -> dict:
    return store(root, run_id).config


SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


@dataclass(frozen=True)
class Task:
    """A run's task and the basis its Fourier quantities are in (the store's root attributes)."""

    name: str  # e.g. "mul"
    formula: str  # e.g. "(a · b) mod p"
    basis: str  # the basis's description, e.g. "Fourier basis of Z_58 over discrete logs base 2"
    kind: str  # "fourier" (the task's group law: Fourier verdicts apply) | "residues" (a convention)
    generator: int | None  # g of a discrete-log basis: operand position i stands for g^i mod p

    @property
    def label(self) -> str:
        return f"{self.name}: {self.formula}"

    def operand(self, dim: str) -> str:
        """An operand axis's label: the operand itself, or for a discrete-log basis the
        exponent along the axis (``a = 2^i, i = log₂ a``)."""
        if self.generator is None or dim not in ("a", "b"):
            return dim
        i = {"a": "i", "b": "j"}[dim]
        return f"{dim} = {self.generator}^{i} ({i} = log{str(self.generator).translate(SUBSCRIPT)} {dim}, in log order)"

    def hover(self, dim: str) -> str:
        """An operand's name in a hover: the operand, or its discrete log."""
        return dim if self.generator is None or dim not in ("a", "b") else f"log{str(self.generator).translate(SUBSCRIPT)} {dim}"


@functools.lru_cache(maxsize=256)
def task(root: str, run_id: str) -> Task:
    """The run's task from the store's root attributes (``task``, ``task_formula``, ``basis``,
    ``basis_kind``, ``generator``). A store written before they were recorded has its task in
    its config, or none (``add``), and its basis is the registry's for that task and p."""
    attrs = store(root, run_id).attrs
    name = str(attrs.get("task") or attrs["config"].get("task", "add"))
    if "task_formula" not in attrs:
        basis = PROBLEMS[name].basis(attrs["config"]["p"])
        return Task(name, PROBLEMS[name].formula, basis.description, basis.kind, basis.generator)
    generator = attrs.get("generator")
    return Task(name, str(attrs["task_formula"]), str(attrs["basis"]), str(attrs["basis_kind"]),
                None if generator in (None, "", "none") else int(generator))


@functools.lru_cache(maxsize=1024)
def describe(root: str, run_id: str, name: str) -> dict:
    return store(root, run_id).array_attrs(name)


_derived: list = []  # the views' caches of what they compute from these reads (``derived``)


def derived(maxsize: int):
    """``functools.lru_cache`` for a view's work on cached reads, shared by every session of
    the process (pages showing the same epoch colour it once) and cleared by :func:`forget`."""
    def wrap(fn):
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _derived.append(cached)
        return cached
    return wrap


def forget() -> None:
    """Drop cached handles and reads (a run was re-created or deleted)."""
    _store.cache_clear()
    for cached in (checkpoint_analyses, task, epoch_slice, neuron_maps, value_range, top_by_variance, coord, describe,
                   series, *_derived):
        cached.cache_clear()
    with _done_lock:
        _done.clear()
    _measured.clear()

def labelled_runs(root: str, runs: list[str]) -> list[str] | dict[str, str]:
    """A run picker's options: the run ids, each labelled with its task (``run · mul``) unless
    every run is ``add``, the task of every store written before tasks were recorded. A run
    that cannot be read is listed by its id (showing it says what is wrong)."""
    tasks = {}
    for run_id in runs:
        try:
            tasks[run_id] = task(root, run_id).name
        except READ_ERRORS:
            tasks[run_id] = None
    if all(t in ("add", None) for t in tasks.values()):
        return list(runs)
    return {(f"{r} · {t}" if t else r): r for r, t in tasks.items()}


def analysis_of(root: str, run_id: str, name: str) -> str | None:
    """The analysis that writes variable ``name`` (recorded in the store)."""
    return describe(root, run_id, name).get("analysis")


def measure(root: str, run_id: str, name: str, layer: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of a per-checkpoint variable over the checkpoints whose analysis is
    done; values keep the variable's trailing dimensions (at ``layer`` only, where given and the
    variable has a ``layer`` dimension; see ``at_layer``). Empty when the variable is absent."""
    epochs, values = _measure(root, run_id, name)
    if layer is not None and len(epochs) and layered(root, run_id, name):
        values = values[:, layer]
    return epochs, values


def _measure(root: str, run_id: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    st = store(root, run_id)
    analysis = analysis_of(root, run_id, name) if st.has(name) else None
    if analysis is None:
        return np.array([], dtype=int), np.array([])
    done = done_epochs(root, run_id, analysis)
    hit = _measured.get((root, run_id, name))
    if hit is None or hit[0] != len(done):  # done epochs only grow: their count keys the read
        keep = np.isin(st.epochs, done)
        result = (st.epochs[keep], np.asarray(st.read(name))[keep])
        for arr in result:
            arr.setflags(write=False)
        hit = _measured[(root, run_id, name)] = (len(done), result)
    return hit[1]


_measured: dict[tuple[str, str, str], tuple[int, tuple[np.ndarray, np.ndarray]]] = {}


def key_frequencies(root: str, run_id: str) -> tuple[list[int] | None, dict]:
    """The run's key frequencies and the attributes that record how they were chosen."""
    st = store(root, run_id)
    keys = st.key_frequencies()
    return keys, (dict(st.group["key_freq_mask"].attrs) if keys else {})


def has(root: str, run_id: str, *names: str) -> bool:
    """Whether the run's store holds every one of these arrays (older runs may lack some)."""
    st = store(root, run_id)
    return all(st.has(name) for name in names)


def check_recorded(root: str, run_id: str) -> None:
    """Raise ``StoreError`` when an analysis the store records (its done record) has none of its
    arrays left readable: a half-written or damaged store, not a run without that analysis."""
    st = store(root, run_id)
    names = st.variables()
    written = {describe(root, run_id, name).get("analysis") for name in names if not name.endswith("_done")}
    for name in names:
        if name.endswith("_done") and name[:-len("_done")] not in written:
            raise StoreError(f"the store records the analysis {name[:-len('_done')]} but none of its arrays "
                             "can be read (half-written or damaged)")


__all__ = ["READ_ERRORS", "StoreError", "Task", "analysed_epochs", "analysis_of", "at_layer", "check_recorded",
           "checkpoint_analyses", "config", "coord", "describe", "done_epochs", "epoch_slice", "forget", "has",
           "key_frequencies", "labelled_runs", "layer_slice", "layered", "measure", "n_layers", "neuron_maps",
           "per_epoch_variables", "runs", "runs_root", "series", "store", "task", "trained_through", "value_range"]
