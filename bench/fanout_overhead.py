"""Orchestration overhead of the analysis fan-out: the analysis flow (Prefect, one task per
checkpoint, one worker; including its find-pending step) against a plain loop over the same
checkpoints, both recomputing every analysis at canonical size (p=113, 95 checkpoints as in the
canonical schedule). Prints both wall times and the overhead ratio.

    .venv/bin/python bench/fanout_overhead.py [--checkpoints 95]
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from tasks.runs import analyze_epoch, choose_key_frequencies, load_config, prepare_run  # noqa: E402


def reset(root: str, run_id: str, n: int) -> None:
    """Forget the first ``n`` checkpoints' done records, so both arms recompute exactly those."""
    st = open_run(root, run_id)
    for a in ANALYSES:
        st.group[f"{a.name}_done"][:n] = 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", type=int, default=95)
    ap.add_argument("--runs", help="use this runs root and --run-id (a trained run) instead of random weights")
    ap.add_argument("--run-id")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.run_id:
        root, run_id = args.runs, args.run_id
        cfg = load_config(root, run_id)
        n = min(args.checkpoints, len(cfg.checkpoint_epochs))
    else:
        n = args.checkpoints
        root = tempfile.mkdtemp(prefix="tdw-fanout-")
        cfg = prepare_run(root, preset("canonical", num_epochs=n, checkpoint_epochs=tuple(range(n))))
        model = build_model(cfg)
        for epoch in range(n):
            with torch.no_grad():
                for prm in trainable(model).values():
                    prm.add_(0.02 * torch.randn_like(prm))
            ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, epoch), model, cfg, epoch)
    choose_key_frequencies(root, cfg.run_id)  # the flow redoes this choice each run, as in use
    flow = analyze_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    flow(cfg.run_id, root)  # warm-up: starts Prefect's temporary server
    todo = cfg.checkpoint_epochs[:n]
    plain, fanned = [], []
    for _ in range(args.rounds):  # interleaved: the machine is shared and noisy
        reset(root, cfg.run_id, len(todo))
        t = time.perf_counter()
        for epoch in todo:
            analyze_epoch(root, cfg.run_id, epoch)
        plain.append(time.perf_counter() - t)
        reset(root, cfg.run_id, len(todo))
        t = time.perf_counter()
        assert flow(cfg.run_id, root) == list(todo)
        fanned.append(time.perf_counter() - t)
    base, flowed = statistics.median(plain), statistics.median(fanned)
    print(f"{len(todo)} checkpoints of {cfg.run_id} (p={cfg.p}, d_mlp={cfg.model.d_mlp}), one worker, "
          f"median of {args.rounds} interleaved rounds")
    print(f"plain loop:    {base:6.2f} s  ({base / len(todo) * 1e3:.0f} ms per checkpoint)")
    print(f"analysis flow: {flowed:6.2f} s  (find-pending step and flow start included)")
    print(f"overhead:      {(flowed / base - 1) * 100:+5.1f} %  ({(flowed - base) / len(todo) * 1e3:.0f} ms per task)")


if __name__ == "__main__":
    main()
