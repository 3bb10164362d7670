"""A small hyperparameter grid for deeper models: when does each setting generalise?

Every combination of ``--lrs``, ``--fracs`` and ``--wds`` on a preset with ``--layers`` blocks
trains (``tasks.training.train``: the fast objective, no store, one thread per process) for at
most ``--epochs`` epochs and stops once the test accuracy reaches 0.95 (with ``--to-end``, it
trains every epoch and also reports the lowest test accuracy after that epoch and the last one:
a loss spike after generalising shows there); the table gives, per setting, the first evaluated
epoch with test accuracy >= 0.95 (or "not by N" and the last test accuracy) and the wall time.
Settings run ``--procs`` at a time, one process each.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/depth_sweep.py [--preset quick] [--layers 2]
        [--lrs 3e-3,6e-3,1e-2] [--fracs 0.3,0.5] [--wds 1] [--epochs 4000] [--procs 2] [--to-end]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import time

import numpy as np

TARGET = 0.95


class _Reached(Exception):
    pass


def first_epoch(test_acc: np.ndarray) -> int | None:
    """The first epoch whose (evaluated, non-NaN) test accuracy is >= TARGET, or None."""
    hits = np.flatnonzero(np.nan_to_num(test_acc, nan=0.0) >= TARGET)
    return int(hits[0]) if len(hits) else None


def run_one(args: tuple) -> dict:
    preset, layers, lr, frac, wd, epochs, to_end = args
    import torch

    from tasks.config import preset as make
    from tasks.model import build_model
    from tasks.training import Series, make_optimizer, train

    torch.set_num_threads(1)
    cfg = make(preset, n_layers=layers, lr=lr, frac_train=frac, weight_decay=wd, num_epochs=epochs)
    model = build_model(cfg)
    series = Series.empty(cfg.num_epochs)

    def stop_when_reached(epoch: int, s: Series) -> None:
        if not to_end and first_epoch(s.test_acc[: epoch + 1]) is not None:
            raise _Reached

    t = time.perf_counter()
    try:
        train(cfg, model, make_optimizer(model, cfg), series=series, on_progress=stop_when_reached,
              progress_every_s=0.5)
    except _Reached:
        pass
    seen = series.test_acc[~np.isnan(series.test_acc)]
    reached = first_epoch(series.test_acc)
    after = series.test_acc[reached:] if reached is not None else np.array([np.nan])
    return {"lr": lr, "frac": frac, "wd": wd, "epoch": reached, "last_test_acc": float(seen[-1]),
            "min_after": float(np.nanmin(after)), "wall_s": time.perf_counter() - t, "init": cfg.model.init}


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lrs", type=floats, default=floats("3e-3,6e-3,1e-2"))
    ap.add_argument("--fracs", type=floats, default=floats("0.3,0.5"))
    ap.add_argument("--wds", type=floats, default=floats("1"))
    ap.add_argument("--epochs", type=int, default=4_000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--to-end", action="store_true", help="train every epoch (lowest and last test accuracy after)")
    args = ap.parse_args()
    grid = [(args.preset, args.layers, lr, frac, wd, args.epochs, args.to_end)
            for lr, frac, wd in itertools.product(args.lrs, args.fracs, args.wds)]
    print(f"preset {args.preset}, {args.layers} layers, at most {args.epochs} epochs; "
          f"first epoch with test accuracy >= {TARGET}", flush=True)
    with multiprocessing.get_context("spawn").Pool(args.procs) as pool:
        for r in pool.imap(run_one, grid):
            reached = f"{r['epoch']:6d}" if r["epoch"] is not None else f"not by {args.epochs} ({r['last_test_acc']:.2f})"
            after = (f"  after it: lowest {r['min_after']:.3f}, last {r['last_test_acc']:.3f}"
                     if args.to_end and r["epoch"] is not None else "")
            print(f"lr {r['lr']:g}  frac {r['frac']:g}  wd {r['wd']:g}  init {r['init']}: {reached}{after}  "
                  f"({r['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
