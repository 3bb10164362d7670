"""Object-storage overhead: the smoke run's steps (plain, no Prefect) with the runs root on local
disk (baseline) and on an S3-compatible server on 127.0.0.1 (moto, started and stopped here),
interleaved rounds; then the viewer's first reads of the finished run, with and without
consolidated metadata. Prints both, and the ratios.

    .venv/bin/python bench/store_s3.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.objectstore import make_bucket, moto_server, s3_environment  # noqa: E402


def steps(root: str) -> dict[str, float]:
    from tasks.config import preset
    from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run, train_run

    t = {}
    t0 = time.perf_counter()
    cfg = prepare_run(root, preset("smoke"))
    t["prepare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    epochs: list[int] = []
    train_run(root, cfg, device="cpu", on_checkpoint=epochs.append)
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    choose_key_frequencies(root, cfg.run_id)
    for epoch in epochs:
        analyze_epoch(root, cfg.run_id, epoch)
    t["analyse"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    t.update(viewer_reads(root, cfg.run_id, consolidated=False))
    return t


def viewer_reads(root: str, run_id: str, consolidated: bool) -> dict[str, float]:
    """What the viewer does first: open the store, list the analysed epochs, read one epoch."""
    from store.run_store import consolidate
    from viz import data

    if consolidated:
        consolidate(root, run_id)
    data.forget()
    t0 = time.perf_counter()
    epochs = data.analysed_epochs(root, run_id)
    data.series(root, run_id)
    data.epoch_slice(root, run_id, "neuron_activations", epochs[-1])
    key = "open (consolidated)" if consolidated else "open"
    return {key: time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="tdw-s3-bench-")
    results: dict[str, list[dict]] = {"local": [], "s3": []}
    with moto_server(os.path.join(tmp, "moto.log")) as endpoint:
        os.environ.update(s3_environment(endpoint))
        make_bucket("bench")
        steps(os.path.join(tmp, "warm"))  # imports and first-model costs out of the rounds
        for i in range(args.rounds):
            results["local"].append(steps(os.path.join(tmp, f"local-{i}")))
            s3_root = f"s3://bench/round-{i}"
            results["s3"].append(steps(s3_root))
            run_id = next(iter(__import__("store.layout", fromlist=["x"]).list_run_ids(s3_root)))
            results["s3"][-1].update(viewer_reads(s3_root, run_id, consolidated=True))
            print(f"round {i}: local {results['local'][-1]['total']:.2f} s, s3 {results['s3'][-1]['total']:.2f} s",
                  flush=True)
    print(f"\nsmoke run steps, median of {args.rounds} interleaved rounds (seconds):")
    print(f"  {'step':22s} {'local':>8s} {'s3':>8s} {'ratio':>7s}")
    for step in results["s3"][0]:
        s3 = statistics.median(r[step] for r in results["s3"])
        local_key = step if step in results["local"][0] else "open"
        local = statistics.median(r[local_key] for r in results["local"])
        print(f"  {step:22s} {local:8.3f} {s3:8.3f} {s3 / local:7.2f}")


if __name__ == "__main__":
    main()
