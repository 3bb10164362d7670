"""Training speed: the original workbench's loop (TransformerLens forward over all 3
positions, test loss every epoch, float64 loss) against the project's trainer, interleaved in
one process on the same config and thread count. Prints ms/epoch (medians) and the ratio.

    .venv/bin/python bench/train_speed.py [--p 113] [--rounds 5] [--epochs 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tasks import data
from tasks.config import preset
from tasks.model import build_model
from tasks.training import make_optimizer, train


def baseline_epochs(cfg, model, opt, n: int) -> float:
    x, y = data.full_probe(cfg.p), data.labels(cfg.p)
    tr, te = data.split(cfg.p, cfg.frac_train, cfg.data_seed)
    t = time.perf_counter()
    for _ in range(n):
        loss = F.cross_entropy(model(x[tr])[:, -1].double(), y[tr])
        loss.backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            F.cross_entropy(model(x[te])[:, -1].double(), y[te])
    return (time.perf_counter() - t) / n * 1e3


def project_epochs(cfg, model, opt, n: int) -> float:
    run = cfg.replace(num_epochs=n + 1, checkpoint_epochs=(0,))
    t = time.perf_counter()
    train(run, model, opt)
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test-every", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset("canonical", p=args.p, test_every=args.test_every)
    models = {name: build_model(cfg) for name in ("baseline", "project")}
    opts = {name: make_optimizer(m, cfg) for name, m in models.items()}
    times = {"baseline": [], "project": []}
    baseline_epochs(cfg, models["baseline"], opts["baseline"], 2)  # warm-up
    project_epochs(cfg, models["project"], opts["project"], 2)
    for _ in range(args.rounds):
        times["baseline"].append(baseline_epochs(cfg, models["baseline"], opts["baseline"], args.epochs))
        times["project"].append(project_epochs(cfg, models["project"], opts["project"], args.epochs))
    base, proj = (statistics.median(times[k]) for k in ("baseline", "project"))
    print(f"p={cfg.p} threads={args.threads} test_every={args.test_every} "
          f"rounds={args.rounds}x{args.epochs} epochs")
    print(f"baseline (TransformerLens full forward): {base:8.1f} ms/epoch")
    print(f"project trainer:                          {proj:8.1f} ms/epoch")
    print(f"ratio (baseline / project):               {base / proj:8.2f}x")


if __name__ == "__main__":
    main()
