"""Calibrate the LLC sampler on a run: sweep the SGLD step size, γ and nβ one at a time around a
centre, on three checkpoints (start, end of memorisation: the checkpoint nearest the test-loss
peak, final). Per setting and checkpoint it prints the checkpoint's train loss, the mean sampled
loss after burn-in against ln p (a chain whose loss nears ln p has left the basin), λ̂ ± its
spread over chains and the health flags; then, per setting, whether every chain stayed healthy
and the order of the three λ̂. Reads the run; writes nothing.

    nice -n 10 .venv/bin/python bench/llc_calibration.py RUNS_ROOT RUN_ID \\
        [--centre 1e-4,100,30] [--steps 3e-5,3e-4] [--gammas 1000,10000] [--nbetas 100,300] \\
        [--chains 2] [--draws 300] [--burn-in 100] [--batch 512]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import torch

from store import layout
from store.run_store import open_run
from tasks import checkpoints as ckpt
from tasks.analyses.llc import SAMPLER, llc
from tasks.analyses.probe import Probe
from tasks.model import build_model
from tasks.runs import load_config


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def three_checkpoints(root: str, run_id: str) -> dict[str, int]:
    """``start``, ``memorised`` (nearest the test-loss peak) and ``final`` checkpoint epochs."""
    store = open_run(root, run_id, mode="r")
    epochs = [int(e) for e in store.epochs]
    test = store.series()["test_loss"]
    peak = int(np.nanargmax(test))
    return {"start": epochs[0], "memorised": min(epochs, key=lambda e: abs(e - peak)), "final": epochs[-1]}


def settings(centre: tuple[float, float, float], steps, gammas, nbetas) -> list[tuple[float, float, float]]:
    """The centre, then each list's values with the other two at the centre's."""
    step, gamma, nbeta = centre
    out = [centre] + [(v, gamma, nbeta) for v in steps] + [(step, v, nbeta) for v in gammas] \
        + [(step, gamma, v) for v in nbetas]
    return list(dict.fromkeys(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("run_id")
    ap.add_argument("--centre", default=f"{SAMPLER.step},{SAMPLER.gamma},{SAMPLER.nbeta}",
                    help="step,gamma,nbeta (default: the analysis's defaults)")
    ap.add_argument("--steps", default="", help="step sizes to try, comma-separated")
    ap.add_argument("--gammas", default="")
    ap.add_argument("--nbetas", default="")
    ap.add_argument("--chains", type=int, default=SAMPLER.chains)
    ap.add_argument("--draws", type=int, default=SAMPLER.draws)
    ap.add_argument("--burn-in", type=int, default=SAMPLER.burn_in)
    ap.add_argument("--batch", type=int, default=SAMPLER.batch)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.root, args.run_id)
    ceiling = math.log(cfg.d_vocab_out)
    points = three_checkpoints(args.root, args.run_id)
    models = {}
    for name, epoch in points.items():
        models[name] = build_model(cfg)
        ckpt.load_into(models[name], layout.checkpoint_path(args.root, args.run_id, epoch), cfg, epoch)
    grid = settings(tuple(floats(args.centre)), floats(args.steps), floats(args.gammas), floats(args.nbetas))
    print(f"run {args.run_id}: checkpoints {points}; ln p = {ceiling:.3f}; {args.chains} chains x "
          f"{args.draws} draws, first {args.burn_in} dropped, minibatch {args.batch}; {len(grid)} settings")
    print(f"{'step':>8} {'gamma':>7} {'nbeta':>6} {'checkpoint':>10} {'loss':>9} {'sampled':>8} "
          f"{'max':>7} {'llc':>8} {'spread':>7} flags  time")
    summary = []
    for step, gamma, nbeta in grid:
        s = replace(SAMPLER, step=step, gamma=gamma, nbeta=nbeta, chains=args.chains, draws=args.draws,
                    burn_in=args.burn_in, batch=args.batch)
        values, healthy = {}, True
        for name, model in models.items():
            t = time.perf_counter()
            out = llc(Probe(cfg, model, ()), s)
            kept = out["llc_trace"][:, s.burn_in:]
            flags = ",".join(f for f in ("diverged", "nonstationary") if out[f"llc_{f}"]) or "-"
            healthy &= flags == "-"
            values[name] = float(out["llc"])
            print(f"{step:8.0e} {gamma:7g} {nbeta:6g} {name:>10} {float(out['llc_init_loss']):9.3g} "
                  f"{np.nanmean(kept):8.3f} {np.nanmax(kept):7.3f} {values[name]:8.2f} "
                  f"{float(out['llc_std']):7.2f} {flags} {time.perf_counter() - t:5.0f}s", flush=True)
        order = " < ".join(sorted(values, key=values.get))
        summary.append(f"{step:8.0e} {gamma:7g} {nbeta:6g}  {'healthy' if healthy else 'FLAGGED':8} {order}")
    print("\nper setting: health of all chains, order of the three λ̂")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
