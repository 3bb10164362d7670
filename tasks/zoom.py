"""Zoom in after the fact: add checkpoints inside a trained run by replaying its training.

Training is deterministic, so the weights at any epoch can be recomputed from the nearest saved
training state at or before it (``state/epoch_XXXXX.safetensors``, every ``state_every`` epochs;
``tasks.checkpoints.save_state``), or from the seeded initialisation when there is none. The
new checkpoints are bit-identical to those of an uninterrupted run that had them in its
schedule (same device, thread count and library versions). Order, so that a kill at any moment
leaves a run that the same zoom completes: (1) under the run's training lock, replay and write
the missing checkpoint files (files outside the schedule are ignored by everything else);
(2) under the layout lock, add the epochs to the store and the config (``store.run_store.grow``);
(3) the analyses fan out on the new checkpoints (``flows/zoom.py``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable

from store import files, layout
from store.run_store import grow, open_run
from tasks import checkpoints as ckpt
from tasks import transitions
from tasks.accel import should_compile
from tasks.config import ENV_DEVICE, RunConfig, RunError
from tasks.lock import layout_lock, training_lock
from tasks.model import build_model, trainable
from tasks.runs import checkpoint_problem, load_config, products_for
from tasks.training import make_optimizer, pick_device, train


class ZoomError(RunError):
    """A zoom that cannot be done as asked; the message says why."""


def trained_through(root: str, run_id: str) -> int:
    """The last epoch whose series are stored (-1: none)."""
    return int(open_run(root, run_id, mode="r").attrs.get("trained_through", -1))


def plan(cfg: RunConfig, last: int, start: int, stop: int, every: int | None = None,
         count: int | None = None) -> list[int]:
    """The epochs a zoom of ``start .. stop`` (inclusive) adds: every ``every`` epochs from
    ``start``, or ``count`` epochs spread evenly, less the run's existing checkpoints. ``last``
    is the last epoch the run was trained through. Raises :class:`ZoomError` in one line."""
    if (every is None) == (count is None):
        raise ZoomError("give one of --every K or --count N")
    if every is not None and every <= 0:
        raise ZoomError(f"--every must be a positive number of epochs, got {every}")
    if count is not None and count <= 0:
        raise ZoomError(f"--count must be a positive number of checkpoints, got {count}")
    if start > stop:
        raise ZoomError(f"--from {start} is after --to {stop}")
    if start < 0 or stop > last:
        trained = f"trained through epoch {last}" if last >= 0 else "not trained yet"
        raise ZoomError(f"epochs {start}..{stop} are outside run {cfg.run_id} ({trained}; "
                        f"zoom within 0..{max(last, 0)})")
    if every is not None:
        wanted = range(start, stop + 1, every)
    else:
        wanted = transitions.spread(start, stop, count)
    return sorted(set(int(e) for e in wanted) - set(cfg.checkpoint_epochs))


@dataclass(frozen=True)
class ReplayPoint:
    """Where a replay starts: a saved state's epoch (``path`` set) or the seeded start (0)."""

    epoch: int
    path: str | None

    def describe(self) -> str:
        return (f"replaying from the saved state at epoch {self.epoch}" if self.path else
                "no saved training state at or before the range: replaying from the seeded start (epoch 0)")


def replay_point(root: str, cfg: RunConfig, before: int) -> ReplayPoint:
    """The latest saved state at or before epoch ``before`` whose file is whole, else the
    seeded start."""
    for epoch in reversed(layout.state_epochs(root, cfg.run_id)):
        path = layout.state_path(root, cfg.run_id, epoch)
        if epoch <= before and _whole(path):
            return ReplayPoint(epoch, path)
    return ReplayPoint(0, None)


def _whole(path: str) -> bool:
    try:
        ckpt.read_checkpoint(path)
        return True
    except ckpt.CheckpointError:
        return False


def replay(root: str, cfg: RunConfig, epochs: list[int], device: str | None = None,
           on_progress: Callable[[int], None] | None = None) -> ReplayPoint | None:
    """Write the checkpoint files of ``epochs`` that are missing or damaged, replaying from the
    nearest saved state before the first of them. None when all were whole already. Holds the
    run's training lock (``tasks.lock.RunBusy`` while it trains)."""
    todo = [e for e in epochs if checkpoint_problem(root, cfg, e, verify=True)]
    if not todo:
        return None
    with training_lock(root, cfg.run_id):
        dev = pick_device(device or os.environ.get(ENV_DEVICE))
        ckpt.remove_partials(layout.checkpoint_dir(root, cfg.run_id))
        point = replay_point(root, cfg, todo[0])
        zoomed = cfg.replace(checkpoint_epochs=tuple(sorted(set(cfg.checkpoint_epochs) | set(todo))))
        model = build_model(cfg, dev)
        optimizer = make_optimizer(model, cfg)
        if point.path:
            saved = ckpt.load_state(point.path, model, optimizer, list(trainable(model)), cfg)
            matmul, compiled = saved["matmul"], saved["compiled"]
            if saved["where"] not in (None, ckpt.where(model)):
                warnings.warn(f"run {cfg.run_id}'s state at epoch {point.epoch} was saved on {saved['where']}; "
                              f"this replay runs on {ckpt.where(model)}: its checkpoints are correct but not "
                              f"bit-identical to what training wrote (use --device and --threads to match)",
                              stacklevel=2)
        else:  # the run's choice of products and compile, as a fresh training makes it
            latest = layout.train_state_path(root, cfg.run_id)
            recorded = ckpt.header(latest).get("matmul") if files.isfile(latest) else None
            matmul, compiled = products_for(cfg, dev, recorded), should_compile(cfg, dev)
        wanted = set(todo)

        def write(epoch: int, model, optimizer, series) -> None:
            if epoch in wanted:
                ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, epoch), model, zoomed, epoch)

        def report(epoch: int, series) -> None:
            if on_progress:
                on_progress(epoch)

        train(zoomed, model, optimizer, start_epoch=point.epoch, on_checkpoint=write, on_progress=report,
              stop_epoch=max(todo), compile_mode="on" if compiled else "off", matmul=matmul)
    return point


def add_to_store(root: str, cfg: RunConfig, epochs: list[int]) -> RunConfig:
    """Add ``epochs`` to the run's schedule, store and ``config.json`` (one writer, under the
    layout and training locks, before any fan-out); returns the run's config."""
    with layout_lock(root), training_lock(root, cfg.run_id):
        cfg = load_config(root, cfg.run_id)
        zoomed = cfg.replace(checkpoint_epochs=tuple(sorted(set(cfg.checkpoint_epochs) | set(epochs))))
        store = open_run(root, cfg.run_id)
        if set(epochs) - set(cfg.checkpoint_epochs) or set(epochs) - set(int(e) for e in store.epochs):
            grow(store, zoomed.to_dict(), zoomed.checkpoint_epochs, zoomed.num_epochs)
        return zoomed


def zoom(root: str, run_id: str, epochs: list[int], device: str | None = None,
         on_progress: Callable[[int], None] | None = None) -> ReplayPoint | None:
    """Replay and add ``epochs`` to the run (steps 1 and 2 above); the analyses are the
    caller's. Running it again after a kill completes it."""
    cfg = load_config(root, run_id)
    point = replay(root, cfg, epochs, device, on_progress)
    add_to_store(root, cfg, epochs)
    return point


def auto(root: str, cfg: RunConfig, budget: int) -> tuple[list[int], list[str]]:
    """The epochs ``--auto`` adds (at most ``budget``) where the run's stored series show its
    transitions (``tasks.transitions``), and one line per window saying what was found, why,
    and what it gets."""
    if budget <= 0:
        raise ZoomError(f"--budget must be a positive number of checkpoints, got {budget}")
    last = trained_through(root, cfg.run_id)
    series = {k: v[: last + 1] for k, v in open_run(root, cfg.run_id, mode="r").series().items()}
    windows = transitions.find(series)
    if not windows:
        return [], [f"no transition found in run {cfg.run_id}'s series (epochs 0..{last})"]
    plan = transitions.densify(windows, budget, set(cfg.checkpoint_epochs))
    lines = []
    for w, picks in plan.items():
        had = sum(w.start <= e <= w.end for e in cfg.checkpoint_epochs)
        lines.append(f"{w.kind} at epochs {w.start}-{w.end}: {w.why}; {had} checkpoint(s) there, "
                     f"+{len(picks)}")
    return sorted(e for picks in plan.values() for e in picks), lines
