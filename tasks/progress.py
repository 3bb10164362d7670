"""Live training progress of a run: one small JSON file, replaced (atomically) at most about
once a second by the process that trains the run, read by whoever watches (a sweep's terminal
bar and Prefect artifact, ``tdw runs``). Checkpoints and series stay the record; this is only
the latest glance, and losing it loses nothing."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from store import files, layout


def path(root: str, run_id: str) -> str:
    return os.path.join(layout.run_dir(root, run_id), "progress.json")


def _last(values: np.ndarray, epoch: int) -> float | None:
    measured = values[: epoch + 1]
    measured = measured[~np.isnan(measured)]
    return float(measured[-1]) if len(measured) else None


def snapshot(epoch: int, num_epochs: int, series) -> dict:
    """What a progress line shows: the epoch, its train loss, the latest measured test loss
    and accuracy (``None`` where nothing was measured yet)."""
    return {
        "epoch": epoch, "num_epochs": num_epochs, "time": time.time(),
        "train_loss": _last(series.train_loss, epoch), "train_acc": _last(series.train_acc, epoch),
        "test_loss": _last(series.test_loss, epoch), "test_acc": _last(series.test_acc, epoch),
    }


def write(root: str, run_id: str, epoch: int, num_epochs: int, series) -> dict:
    snap = snapshot(epoch, num_epochs, series)
    files.write_text(path(root, run_id), json.dumps(snap))
    return snap


def read(root: str, run_id: str) -> dict | None:
    """The latest snapshot, or None (not started, or a torn/foreign file)."""
    try:
        snap = json.loads(files.read_text(path(root, run_id)))
    except (OSError, ValueError):
        return None
    return snap if isinstance(snap, dict) and "epoch" in snap else None


def fraction(snap: dict | None) -> float:
    """Epochs done, in [0, 1]."""
    if not snap or not snap.get("num_epochs"):
        return 0.0
    return min(1.0, (snap["epoch"] + 1) / snap["num_epochs"])


def describe(snap: dict | None) -> str:
    """``epoch 1200/3500  loss 1.2e-02  test acc 0.451`` (blank parts left out)."""
    if not snap:
        return "waiting"
    parts = [f"epoch {snap['epoch']}/{snap['num_epochs'] - 1}"]
    if snap.get("train_loss") is not None and math.isfinite(snap["train_loss"]):
        parts.append(f"loss {snap['train_loss']:.2e}")
    if snap.get("test_acc") is not None:
        parts.append(f"test acc {snap['test_acc']:.3f}")
    return "  ".join(parts)
