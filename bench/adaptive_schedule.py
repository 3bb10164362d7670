"""Where a trained run's checkpoints fall: inside its generalisation window (the first epoch whose
test accuracy reaches 0.1 to the first that reaches 0.95) against across the whole run, for the
run's own schedule (e.g. adaptive) and for the default fixed schedule of the same config (the
hand-tuned canonical one at p = 113 over 25,000 epochs, else log-then-linear). The trajectory
does not depend on the schedule, so both are counted in the window this run's series show.

    python bench/adaptive_schedule.py RUNS_ROOT RUN_ID

Prints, for each schedule: checkpoints, those inside the window, the density inside (per 1,000
epochs) and across the run, and their ratio; then the ratio of the two schedules' densities
inside the window.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from store import layout
from store.run_store import open_run
from tasks.adaptive import window
from tasks.config import RunConfig, default_schedule


def densities(epochs, lo: int, hi: int, num_epochs: int) -> tuple[int, int, float, float]:
    """``(checkpoints, inside [lo, hi], per 1,000 epochs inside, per 1,000 epochs across)``."""
    epochs = np.asarray(epochs)
    inside = int(((epochs >= lo) & (epochs <= hi)).sum())
    return len(epochs), inside, 1e3 * inside / (hi - lo + 1), 1e3 * len(epochs) / num_epochs


def main(root: str, run_id: str) -> None:
    cfg = RunConfig.from_dict(json.loads(open(layout.config_path(root, run_id)).read()))
    store = open_run(root, run_id, mode="r")
    found = window(store.series()["test_acc"])
    if found is None:
        raise SystemExit(f"run {run_id}: test accuracy never reaches 0.95, so it has no generalisation window")
    lo, hi = found
    rows = {f"this run ({cfg.schedule})": [int(e) for e in store.epochs],
            "fixed default": list(default_schedule(cfg.p, cfg.num_epochs))}
    print(f"run {run_id}: {cfg.num_epochs} epochs, window {lo}-{hi} (test accuracy 0.1 -> 0.95, "
          f"{hi - lo + 1} epochs, {(hi - lo + 1) / cfg.num_epochs:.0%} of the run)")
    if cfg.schedule == "adaptive":
        print(f"adaptive rule: at most {cfg.checkpoints_max}, floor {cfg.checkpoint_floor} epochs, "
              f"thresholds {list(cfg.schedule_thresholds)}")
    inside = {}
    for name, epochs in rows.items():
        n, k, d_in, d_all = densities(epochs, lo, hi, cfg.num_epochs)
        inside[name] = d_in
        print(f"{name:>22}: {n:3d} checkpoints, {k:3d} inside; per 1k epochs {d_in:6.2f} inside, "
              f"{d_all:5.2f} across; ratio {d_in / d_all:.2f}")
    mine, fixed = inside.values()
    print(f"inside the window: this run's schedule {mine / fixed:.2f}x as dense as the fixed default")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
