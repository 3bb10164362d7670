"""K seeds trained together in one process against one seed alone, interleaved, same device
and config (canonical p = 113). Prints ms/epoch for each and the ratio (K seeds / one seed);
the GPU goal is 16 seeds in <= 2x the time of one.

    .venv/bin/python bench/batched_seeds.py [--k 16] [--device cuda] [--compile on]
                                            [--rounds 5] [--epochs 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tasks.batched import BatchedRuns
from tasks.config import preset
from tasks.training import pick_device


def epochs_ms(batch: BatchedRuns, n: int, test_every: int) -> float:
    sync = torch.cuda.synchronize if batch.weights[0].is_cuda else (lambda: None)
    sync()
    t = time.perf_counter()
    for epoch in range(n):
        batch.step()
        if epoch % test_every == 0:
            with torch.no_grad():
                batch.evaluate("test")
    sync()
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--device", default=None, help="default: CUDA when present")
    ap.add_argument("--compile", default="on", choices=("on", "off"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    base = preset("canonical")
    compiled = args.compile == "on"
    one = BatchedRuns([base], device, compiled)
    many = BatchedRuns([base.replace(seed=s, data_seed=1000 + s) for s in range(args.k)], device, compiled)
    for batch in (one, many):  # warm-up, compilation included
        epochs_ms(batch, 3, base.test_every)
    times = {"one": [], "many": []}
    for _ in range(args.rounds):
        times["one"].append(epochs_ms(one, args.epochs, base.test_every))
        times["many"].append(epochs_ms(many, args.epochs, base.test_every))
    t1, tk = statistics.median(times["one"]), statistics.median(times["many"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({name}) compile={args.compile} p={base.p} test_every={base.test_every} "
          f"rounds={args.rounds}x{args.epochs} epochs")
    print(f"1 seed:            {t1:8.2f} ms/epoch")
    print(f"{args.k} seeds batched: {tk:8.2f} ms/epoch ({tk / args.k:.2f} ms per seed-epoch)")
    print(f"ratio ({args.k} seeds / 1 seed): {tk / t1:6.2f}x   (goal on a GPU: <= 2x for 16)")
    print(f"canonical 25,000-epoch run at this speed: {25_000 * t1 / 1e3:.0f} s for one seed, "
          f"{25_000 * tk / 1e3:.0f} s for {args.k}")


if __name__ == "__main__":
    main()
