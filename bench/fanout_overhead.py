"""Orchestration overhead of the analysis fan-out: the analysis flow (Prefect, one task per
checkpoint, one worker) against a plain loop over the same checkpoints, both recomputing every
analysis at canonical size. Prints both wall times and the overhead ratio.

    .venv/bin/python bench/fanout_overhead.py [--checkpoints 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.analyze import analyze_flow  # noqa: E402
from store import layout  # noqa: E402
from store.run_store import open_run  # noqa: E402
from tasks import checkpoints as ckpt  # noqa: E402
from tasks.analyses import ANALYSES  # noqa: E402
from tasks.config import preset  # noqa: E402
from tasks.model import build_model, trainable  # noqa: E402
from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run  # noqa: E402


def reset(root: str, run_id: str) -> None:
    st = open_run(root, run_id)
    for a in ANALYSES:
        st.group[f"{a.name}_done"][:] = 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.checkpoints
    root = tempfile.mkdtemp(prefix="tdw-fanout-")
    cfg = prepare_run(root, preset("canonical", num_epochs=n, checkpoint_epochs=tuple(range(n))))
    model = build_model(cfg)
    for epoch in range(n):
        with torch.no_grad():
            for prm in trainable(model).values():
                prm.add_(0.02 * torch.randn_like(prm))
        ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, epoch), model, cfg, epoch)
    choose_key_frequencies(root, cfg.run_id)
    flow = analyze_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    flow(cfg.run_id, root)  # warm-up: starts Prefect's temporary server
    plain, fanned = [], []
    for _ in range(2):
        reset(root, cfg.run_id)
        t = time.perf_counter()
        for epoch in range(n):
            analyze_epoch(root, cfg.run_id, epoch)
        plain.append(time.perf_counter() - t)
        reset(root, cfg.run_id)
        t = time.perf_counter()
        flow(cfg.run_id, root)
        fanned.append(time.perf_counter() - t)
    base, flowed = min(plain), min(fanned)
    print(f"{n} canonical checkpoints, one worker")
    print(f"plain loop:    {base:6.2f} s  ({base / n * 1e3:.0f} ms per checkpoint)")
    print(f"analysis flow: {flowed:6.2f} s")
    print(f"overhead:      {(flowed / base - 1) * 100:+5.1f} %  ({(flowed - base) / n * 1e3:.0f} ms per task)")


if __name__ == "__main__":
    main()
