"""The steps of a run, as plain functions (no Prefect): prepare a run, train it writing
checkpoints and series, analyse one checkpoint. ``tasks/steps.py`` wraps them as Prefect tasks."""

from __future__ import annotations

import functools
import json
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch

from store import files, layout
from store.run_store import StoreError, consolidate, create_run, grow, open_run, remove_stale_partials
from tasks import checkpoints as ckpt
from tasks import onednn, problems, progress
from tasks.adaptive import Decider, Rule
from tasks.accel import should_compile
from tasks.lock import layout_lock, training_lock
from tasks.analyses import BY_NAME, in_store, variables
from tasks.analyses.fourier import KEY_RULE, key_frequencies
from tasks.analyses.probe import Probe
from tasks.config import ENV_DEVICE, RunConfig, RunError
from tasks.model import build_model, trainable
from tasks.training import Series, make_optimizer, pick_device, train


def load_config(root: str, run_id: str) -> RunConfig:
    path = layout.config_path(root, run_id)
    if not files.isfile(path):
        known = ", ".join(layout.list_run_ids(root)) or "none"
        raise RunError(f"unknown run id {run_id!r} under {root} (runs: {known})")
    try:
        cfg = RunConfig.from_dict(json.loads(files.read_text(path)))
    except (ValueError, TypeError) as exc:  # ConfigError and JSON errors are ValueErrors
        raise RunError(f"run {run_id}: {path} is not a valid run config ({exc})") from None
    if cfg.run_id != run_id:
        raise RunError(f"run folder {run_id} holds the config of run {cfg.run_id} "
                       "(copied or edited by hand?); refusing to mix them")
    return cfg


def _dims(cfg: RunConfig) -> dict:
    return {"p": cfg.p, "d_mlp": cfg.model.d_mlp, "n_heads": cfg.model.n_heads, "num_epochs": cfg.num_epochs,
            "n_layers": cfg.model.n_layers}


def prepare_run(root: str, cfg: RunConfig) -> RunConfig:
    """Create the run, or reconcile ``cfg`` with the existing run of the same id: same extent
    resumes; a longer one extends (existing checkpoints kept); a shorter one is refused.
    Creates every analysis variable before any fan-out. Returns the run's effective config.
    Holds the runs root's layout lock throughout, so concurrent starts never race to create
    the same run or the same arrays."""
    with layout_lock(root):
        return _prepare_run(root, cfg)


def _prepare_run(root: str, cfg: RunConfig) -> RunConfig:
    run_id = cfg.run_id
    if not files.exists(layout.config_path(root, run_id)):
        store = create_run(root, run_id, cfg.to_dict(), cfg.checkpoint_epochs, _dims(cfg), variables())
    else:
        old = load_config(root, run_id)
        store = open_run(root, run_id)
        if cfg.num_epochs < old.num_epochs:
            raise RunError(
                f"run {run_id} already has {old.num_epochs} epochs; it cannot be shortened to "
                f"{cfg.num_epochs} (use a new data or model seed for a new run)"
            )
        asked = cfg
        if cfg.num_epochs == old.num_epochs and cfg.schedule != old.schedule:
            cfg = old  # a resume keeps the run's schedule (tdw zoom adds checkpoints inside a run)
        if cfg.num_epochs > old.num_epochs or set(cfg.checkpoint_epochs) - set(old.checkpoint_epochs):
            later = [e for e in cfg.checkpoint_epochs if e > old.checkpoint_epochs[-1]]
            cfg = cfg.replace(checkpoint_epochs=tuple(old.checkpoint_epochs) + tuple(later))
            with training_lock(root, run_id):  # never grow a store under a running trainer
                grow(store, cfg.to_dict(), cfg.checkpoint_epochs, cfg.num_epochs)
        else:
            cfg = old
        _say_what_is_kept(asked, cfg)
        store.ensure_variables(variables())  # an analysis added since the run was created
    return cfg


def _say_what_is_kept(asked: RunConfig, cfg: RunConfig) -> None:
    """Warn, in one line, when an existing run keeps its schedule or state interval over the
    ones asked (they change only when the run is extended: more epochs)."""
    kept = [f"{name} {getattr(cfg, name)} (asked {getattr(asked, name)})"
            for name in ("schedule", "state_every") if getattr(asked, name) != getattr(cfg, name)]
    if asked.schedule == cfg.schedule == "adaptive" and asked.checkpoints_max != cfg.checkpoints_max:
        kept.append(f"checkpoints_max {cfg.checkpoints_max} (asked {asked.checkpoints_max})")
    if kept:
        warnings.warn(f"run {cfg.run_id} keeps its {', '.join(kept)}: these change only when the run "
                      f"is extended (more epochs)", stacklevel=4)


def _resume_point(root: str, cfg: RunConfig, model, optimizer) -> tuple[int, Series, str | None]:
    """Load the latest saved training state, if any: ``(start_epoch, series so far, the products
    it was trained with)`` (None: starting afresh)."""
    run_id, series = cfg.run_id, Series.empty(cfg.num_epochs)
    state_path = layout.train_state_path(root, run_id)
    if not files.isfile(state_path):
        return 0, series, None
    names = list(trainable(model))
    try:
        epoch, matmul = ckpt.load_train_state(state_path, optimizer, names)
        ckpt.load_into(model, layout.checkpoint_path(root, run_id, epoch), cfg, epoch)
    except ckpt.CheckpointError:
        optimizer.state.clear()
        return 0, series, None  # damaged state: start over from the seeded initialisation
    saved = open_run(root, run_id).series()
    for name, values in saved.items():
        getattr(series, name)[:epoch] = values[:epoch]
    return epoch, series, matmul


def products_for(cfg: RunConfig, dev: torch.device, recorded: str | None) -> str:
    """The products to train with (and record): a run trained on torch.matmul stays on it; any
    other gets this process's choice. A run trained with oneDNN resumed where it is off goes on
    with torch.matmul, said in a warning: correct, but no longer bit-identical."""
    if recorded == "torch":
        return recorded
    here = onednn.choice(dev)
    if recorded == "onednn" and here != "onednn":
        warnings.warn(f"run {cfg.run_id} was trained with oneDNN float32 products, which this process "
                      f"does not use (TDW_ONEDNN=0, another device, or its check failed): it continues "
                      f"with torch.matmul, correct but not bit-identical to an uninterrupted run", stacklevel=3)
    return here


def checkpoint_problem(root: str, cfg: RunConfig, epoch: int, verify: bool = False) -> str | None:
    """Why the checkpoint of ``epoch`` cannot be used (missing, truncated, another run's or
    epoch's; with ``verify``, also tensors not matching their checksum), or None if it can."""
    path = layout.checkpoint_path(root, cfg.run_id, epoch)
    if not files.isfile(path):
        return "missing"
    try:
        meta = ckpt.checkpoint_metadata(path, verify)
    except ckpt.CheckpointError as exc:
        return str(exc)
    if meta["run_id"] != cfg.run_id or meta["epoch"] != epoch:
        return f"it holds run {meta['run_id']} epoch {meta['epoch']}"
    return None


def checkpoint_ok(root: str, cfg: RunConfig, epoch: int, verify: bool = False) -> bool:
    return checkpoint_problem(root, cfg, epoch, verify) is None


def _set_aside(path: str) -> None:
    """Keep a damaged file for inspection under ``<name>.corrupt`` (never silently lost)."""
    if files.is_url(path):
        files.write_bytes(path + ".corrupt", files.read_bytes(path))
        files.remove(path)
    elif os.path.exists(path):
        os.replace(path, path + ".corrupt")


def recompute_checkpoints(root: str, cfg: RunConfig, through: int, dev: torch.device,
                          compile_mode: str = "auto", matmul: str | None = None) -> list[int]:
    """Find the checkpoints up to epoch ``through`` that are missing or damaged, name them,
    and recompute them by replaying training from the seeded initialisation (deterministic:
    the same weights on the same device and thread count). Only those files are written."""
    problems = {e: checkpoint_problem(root, cfg, e, verify=True) for e in cfg.checkpoint_epochs if e <= through}
    damaged = {e: why for e, why in problems.items() if why}
    if not damaged:
        return []
    listing = "; ".join(f"epoch {e}: {why}" for e, why in damaged.items())
    warnings.warn(f"run {cfg.run_id}: recomputing {len(damaged)} checkpoint(s) by replaying "
                  f"training from epoch 0 ({listing})", stacklevel=2)
    for e, why in damaged.items():
        if why != "missing":
            _set_aside(layout.checkpoint_path(root, cfg.run_id, e))
    model = build_model(cfg, dev)

    def write(epoch: int, model, optimizer, series) -> None:
        if epoch in damaged:
            ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, epoch), model, cfg, epoch)

    train(cfg, model, make_optimizer(model, cfg), on_checkpoint=write, stop_epoch=max(damaged),
          compile_mode=compile_mode, matmul=matmul)
    return sorted(damaged)


def _holding_training_lock(fn):
    """Run ``fn(root, cfg, ...)`` holding ``cfg``'s run's training lock (``tasks.lock``)."""
    @functools.wraps(fn)
    def locked(root: str, cfg: RunConfig, **kwargs):
        with training_lock(root, cfg.run_id):
            return fn(root, cfg, **kwargs)
    return locked


@_holding_training_lock
def train_run(
    root: str,
    cfg: RunConfig,
    *,
    device: str | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    on_progress: Callable[[int, Series], None] | None = None,
    compile_mode: str = "auto",
) -> Series:
    """Train (or resume) the run on ``device`` (else ``$TDW_DEVICE``, else CUDA when present,
    else CPU); at each checkpoint write the weights, the resume state and
    the series so far, then call ``on_checkpoint(epoch)`` (e.g. to fan out its analysis); at
    every multiple of ``cfg.state_every`` save the training state for replays (``tdw zoom``).
    About once a second the progress file (``tasks.progress``) is replaced, then
    ``on_progress(epoch, series)`` called. Raises ``tasks.lock.RunBusy`` while another process
    trains the run."""
    dev = pick_device(device or os.environ.get(ENV_DEVICE))
    for folder in (layout.run_dir(root, cfg.run_id), layout.checkpoint_dir(root, cfg.run_id),
                   layout.state_dir(root, cfg.run_id)):
        ckpt.remove_partials(folder)  # left by a writer killed mid-write; the renamed files are whole
    remove_stale_partials(root, cfg.run_id)
    model = build_model(cfg, dev)
    optimizer = make_optimizer(model, cfg)
    start, series, recorded = _resume_point(root, cfg, model, optimizer)
    matmul = products_for(cfg, dev, recorded)
    if start:  # checkpoints before the resume point must all be whole
        recompute_checkpoints(root, cfg, start - 1, dev, compile_mode, matmul)
    if start == cfg.num_epochs - 1 and checkpoint_ok(root, cfg, start):
        if on_checkpoint:
            for e in cfg.checkpoint_epochs:
                on_checkpoint(e)
        return series
    store = open_run(root, cfg.run_id)
    names = list(trainable(model))
    flushed = [start]
    decider, place = _adaptive(root, cfg, start, store)

    def save(epoch: int, model, optimizer, series: Series) -> None:
        # weights, then (an adaptive run's new checkpoint) the epoch in the store and config,
        # then the series so far, then the resume state: the state is the commit point, so a
        # kill at any moment resumes from a state whose epochs are all on disk
        if not checkpoint_ok(root, cfg, epoch):
            ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, epoch), model, cfg, epoch)
        place(epoch)
        store.write_series(series.as_dict(), flushed[0], epoch + 1)
        flushed[0] = epoch + 1
        ckpt.save_train_state(layout.train_state_path(root, cfg.run_id), optimizer, names, epoch, matmul)
        if on_checkpoint:
            on_checkpoint(epoch)

    if on_checkpoint:  # checkpoints written before an interruption
        for e in cfg.checkpoint_epochs:
            if e < start:
                on_checkpoint(e)

    def report(epoch: int, series: Series) -> None:
        progress.write(root, cfg.run_id, epoch, cfg.num_epochs, series)
        if on_progress:
            on_progress(epoch, series)

    compiled = should_compile(cfg, dev, compile_mode)

    def keep_state(epoch: int, model, optimizer) -> None:  # for tdw zoom's replays
        ckpt.save_state(layout.state_path(root, cfg.run_id, epoch), model, optimizer, names, cfg, epoch,
                        matmul, compiled)

    return train(cfg, model, optimizer, start_epoch=start, series=series, on_checkpoint=save,
                 on_progress=report, compile_mode="on" if compiled else "off", matmul=matmul,
                 on_state=keep_state, should_checkpoint=decider)


def _adaptive(root: str, cfg: RunConfig, start: int, store) -> tuple[Decider | None, Callable[[int], None]]:
    """For an adaptive run resumed at ``start`` (a checkpoint: 0, or the one its resume state
    was saved at): the rule deciding its checkpoints (``tasks.adaptive``), and ``place(epoch)``,
    which adds a newly decided checkpoint to the store and ``config.json`` (one writer, under
    the layout lock, before the epoch's analysis fans out). For a fixed schedule: (None, a
    no-op)."""
    if cfg.schedule != "adaptive":
        return None, lambda epoch: None
    decided = set(cfg.checkpoint_epochs)

    def place(epoch: int) -> None:
        if epoch in decided:
            return
        decided.add(epoch)
        grown = cfg.replace(checkpoint_epochs=tuple(sorted(decided)))
        with layout_lock(root):
            grow(store, grown.to_dict(), grown.checkpoint_epochs, grown.num_epochs)

    return Decider(Rule.of(cfg), used=sum(e < start for e in decided)), place


_spare_models: dict[str, list[torch.nn.Module]] = {}
_spare_lock = threading.Lock()


@contextmanager
def _analysis_model(cfg: RunConfig):
    """A model of ``cfg``'s shape to load a checkpoint into: reused across tasks and threads
    (every weight is overwritten by the checkpoint, so reuse is exact and saves the build)."""
    with _spare_lock:
        spares = _spare_models.setdefault(cfg.run_id, [])
        model = spares.pop() if spares else None
    model = model if model is not None else build_model(cfg)
    try:
        yield model
    finally:
        with _spare_lock:
            _spare_models.setdefault(cfg.run_id, []).append(model)


def analyze_epoch(root: str, run_id: str, epoch: int, names: list[str] | None = None,
                  force: bool = False) -> list[str]:
    """Run the analyses of one checkpoint that are missing or stale; returns those computed.
    Data first, then the done record."""
    cfg = load_config(root, run_id)
    store = open_run(root, run_id)
    keys = store.key_frequencies()
    todo = [BY_NAME[n] for n in (names or [a.name for a in in_store(store.has)])]
    todo = [a for a in todo if keys or not a.needs_keys]  # those wait for the key frequencies
    if not force:
        todo = [a for a in todo if not store.is_done(a.name, epoch, a.version(keys))]
    if not todo:
        return []
    path = layout.checkpoint_path(root, run_id, epoch)
    with _analysis_model(cfg) as model:
        ckpt.load_into(model, path, cfg, epoch)
        probe = Probe(cfg, model, tuple(h for a in todo for h in a.hook_names(cfg.model.n_layers)))
        for analysis in todo:
            results = analysis.fn(probe, keys) if analysis.needs_keys else analysis.fn(probe)
            for var in analysis.outputs:
                store.write_epoch(var.name, epoch, np.asarray(results[var.name], dtype=var.dtype))
            store.mark_done(analysis.name, epoch, analysis.version(keys))
    return [a.name for a in todo]


def prepare_analysis(root: str, run_id: str) -> None:
    """Clean up after killed writers (stale ``*.partial`` chunk files) and create analysis
    variables an older store lacks (one writer, before any fan-out)."""
    remove_stale_partials(root, run_id)
    with layout_lock(root):  # another process may be adding the same arrays
        open_run(root, run_id).ensure_variables(variables())


def add_analyses(root: str, run_id: str, names: tuple[str, ...]) -> None:
    """Ask for the optional analyses ``names`` (e.g. ``("llc",)``) on this run: their arrays are
    created (theirs only), so every later fan-out computes them (``tasks.analyses.in_store``)."""
    with layout_lock(root):
        open_run(root, run_id).ensure_variables([v for v in variables(names) if v.attrs["analysis"] in names])


def choose_key_frequencies(root: str, run_id: str, threshold: float = 0.5) -> list[int] | None:
    """Choose the key frequencies from the final checkpoint and record them with their rule;
    None while the final checkpoint is not on disk."""
    cfg = load_config(root, run_id)
    final = cfg.checkpoint_epochs[-1]
    if not checkpoint_ok(root, cfg, final):
        return None
    model = build_model(cfg)
    ckpt.load_into(model, layout.checkpoint_path(root, run_id, final), cfg, final)
    keys = key_frequencies(model.W_E.detach(), problems.get(cfg.task).basis(cfg.p), threshold)
    store = open_run(root, run_id)
    if store.key_frequencies() != keys:
        store.write_key_frequencies(keys, rule=KEY_RULE, threshold=threshold, from_epoch=final)
    return keys


def analysis_to_do(root: str, run_id: str) -> list[int]:
    """Before a fan-out: create any missing analysis arrays, choose the key frequencies from the
    final checkpoint (the analyses that use them need them first), and list the checkpoints
    with work left."""
    prepare_analysis(root, run_id)
    choose_key_frequencies(root, run_id)
    return pending_epochs(root, run_id)


def pending_epochs(root: str, run_id: str) -> list[int]:
    """Checkpoints on disk with at least one analysis missing or stale."""
    cfg = load_config(root, run_id)
    store = open_run(root, run_id)
    keys = store.key_frequencies()
    stale = np.zeros(len(store.epochs), dtype=bool)
    for a in in_store(store.has):
        if keys or not a.needs_keys:
            stale |= ~store.done_mask(a.name, a.version(keys))
    return [int(e) for e, s in zip(store.epochs, stale) if s and checkpoint_ok(root, cfg, int(e))]


def run_status(root: str, run_id: str) -> dict:
    """A summary for listings: config, training progress, analysed checkpoints, final accuracy."""
    cfg = load_config(root, run_id)
    try:
        store = open_run(root, run_id, mode="r")
    except StoreError as exc:
        return {"run_id": run_id, "config": cfg, "error": str(exc)}
    done = np.ones(len(store.epochs), dtype=bool)
    for a in in_store(store.has):
        done &= store.done_mask(a.name)
    trained = int(store.attrs.get("trained_through", -1))
    acc = store.series()["test_acc"]
    measured = acc[~np.isnan(acc)]
    return {
        "run_id": run_id, "config": cfg, "trained_through": trained,
        "num_epochs": cfg.num_epochs, "checkpoints": len(store.epochs),
        "analysed": int(done.sum()), "test_acc": float(measured[-1]) if len(measured) else float("nan"),
    }


def consolidate_finished(root: str, run_id: str) -> bool:
    """On an object store, consolidate the store's metadata once the run is finished (trained to
    its last epoch, nothing left to analyse, so no writer is active): readers then open it with
    one request instead of one per array. True when it did."""
    if not files.is_url(root):
        return False
    store = open_run(root, run_id, mode="r")
    if int(store.attrs.get("trained_through", -1)) < load_config(root, run_id).num_epochs - 1:
        return False
    if pending_epochs(root, run_id):
        return False
    consolidate(root, run_id)
    return True
