"""Analysis cost per checkpoint at canonical size (p=113, d_mlp 512; ``--layers`` blocks), and
the store's size and read speed. Prints the median over checkpoints.

    .venv/bin/python bench/analysis_speed.py [--p 113] [--layers 1] [--checkpoints 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from store import layout
from store.run_store import open_run
from tasks import checkpoints as ckpt
from tasks.config import preset
from tasks.model import build_model, trainable
from tasks.analyses import ANALYSES
from tasks.analyses.probe import Probe
from tasks.runs import analyze_epoch, prepare_run


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--checkpoints", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = tempfile.mkdtemp(prefix="tdw-bench-")
    n = args.checkpoints
    cfg = prepare_run(root, preset("canonical", p=args.p, n_layers=args.layers, num_epochs=n,
                                          checkpoint_epochs=tuple(range(n))))
    model = build_model(cfg)
    for epoch in range(n):  # distinct, non-trivial weights per checkpoint
        with torch.no_grad():
            for prm in trainable(model).values():
                prm.add_(0.02 * torch.randn_like(prm))
        ckpt.save_checkpoint(layout.checkpoint_path(root, cfg.run_id, epoch), model, cfg, epoch)
    # random weights make every frequency "key"; a trained p=113 model has about five
    open_run(root, cfg.run_id).write_key_frequencies([14, 35, 41, 42, 52], rule="planted for the benchmark")
    store_dir = layout.store_path(root, cfg.run_id)
    before = du(store_dir)
    times, cpu = [], []  # wall and this process's CPU time (less moved by other work on the cores)
    for epoch in range(n):
        t, c = time.perf_counter(), time.process_time()
        analyze_epoch(root, cfg.run_id, epoch)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    per_epoch_mb = (du(store_dir) - before) / n / 1e6
    st = open_run(root, cfg.run_id, mode="r")
    reads = []
    for i in range(50):
        t = time.perf_counter()
        st.read("neuron_activations", i % n, i % cfg.model.n_layers, i % cfg.model.d_mlp)
        reads.append(time.perf_counter() - t)
    t = time.perf_counter()
    full = st.read("neuron_activations", 0)
    whole = time.perf_counter() - t
    assert np.isfinite(full).all()
    breakdown = {}
    keys = st.key_frequencies()
    measured = [a for a in ANALYSES if not a.optional]  # those every run has
    for _ in range(3):
        probe = Probe(cfg, model, tuple(h for a in measured for h in a.hook_names(cfg.model.n_layers)))
        t = time.process_time()
        probe.logits()
        breakdown.setdefault("forward (logits + hooks)", []).append(time.process_time() - t)
        for a in measured:
            t = time.process_time()
            a.fn(probe, keys) if a.needs_keys else a.fn(probe)
            breakdown.setdefault(a.name, []).append(time.process_time() - t)
    print(f"p={cfg.p} d_mlp={cfg.model.d_mlp} layers={cfg.model.n_layers}: {n} checkpoints, key frequencies {keys}")
    for name, ts in breakdown.items():
        print(f"  {name:28s} {statistics.median(ts) * 1e3:7.1f} ms CPU")
    print(f"all analyses, one checkpoint (median): {statistics.median(times) * 1e3:7.0f} ms wall, "
          f"{statistics.median(cpu) * 1e3:.0f} ms CPU")
    print(f"store growth per checkpoint:           {per_epoch_mb:7.2f} MB")
    print(f"checkpoint file:                       {os.path.getsize(layout.checkpoint_path(root, cfg.run_id, 0)) / 1e6:7.2f} MB")
    print(f"read one neuron's (a, b) map (median): {statistics.median(reads) * 1e3:7.2f} ms  (one layer's)")
    print(f"read one epoch of activations:         {whole * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
