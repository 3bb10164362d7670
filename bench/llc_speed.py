"""The LLC's cost: λ̂ of one checkpoint with the analysis's defaults (``tasks.analyses.llc``),
the same SGLD steps through the unfused TransformerLens forward as the baseline measured in the
same run (the ratio printed), λ̂ with minibatches against the full training set (the same
estimate?), and, with ``--curve``, every checkpoint of the run (meant for a GPU).

    .venv/bin/python bench/llc_speed.py RUNS_ROOT RUN_ID [--epoch E] [--steps 100]
        [--full-batch] [--device cpu|cuda] [--curve]

devinterp's own default path cannot serve as the baseline here: its loss predicts every next
token of ``input_ids`` (the answer is not one of the model's three input tokens) and averages
over positions, so it estimates something else.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from store import layout
from tasks import checkpoints as ckpt
from tasks.analyses.llc import SAMPLER, estimate, llc, training_loss
from tasks.analyses.probe import Probe
from tasks.model import build_model, trainable
from tasks.runs import load_config
from tasks.training import loss_and_accuracy


def load(root: str, cfg, epoch: int, device: str):
    model = build_model(cfg, device)
    ckpt.load_into(model, layout.checkpoint_path(root, cfg.run_id, epoch), cfg, epoch)
    return model


def unfused_loss(model, inputs: torch.Tensor, labels: torch.Tensor):
    """The baseline: the same float64 answer-position loss through the TransformerLens forward."""
    device = next(model.parameters()).device
    x, y = inputs.to(device), labels.to(device)
    return lambda idx: loss_and_accuracy(model(x if idx is None else x[idx])[:, -1], y if idx is None else y[idx])[0]


def timed(fn) -> tuple[float, dict]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def describe(out: dict) -> str:
    flags = [f for f in ("diverged", "nonstationary") if out[f"llc_{f}"]]
    return f"λ̂ = {float(out['llc']):.3f} ± {float(out['llc_std']):.3f}{' (' + ', '.join(flags) + ')' if flags else ''}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("run_id")
    ap.add_argument("--epoch", type=int, help="checkpoint (default: the final one)")
    ap.add_argument("--steps", type=int, default=100, help="SGLD steps per path for the fused/unfused ratio")
    ap.add_argument("--full-batch", action="store_true", help="also λ̂ with every training pair per step")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--curve", action="store_true", help="also λ̂ of every checkpoint (a GPU's job)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.root, args.run_id)
    epoch = args.epoch if args.epoch is not None else cfg.checkpoint_epochs[-1]
    model = load(args.root, cfg, epoch, args.device)
    probe = Probe(cfg, model, ())
    idx = probe.train_idx
    inputs, labels = probe.inputs[idx], probe.labels[idx]
    print(f"run {args.run_id}, epoch {epoch}, {len(idx)} training pairs, device {args.device}, "
          f"{torch.get_num_threads()} thread(s); defaults {SAMPLER}")

    short = replace(SAMPLER, chains=1, draws=args.steps, burn_in=0)
    params = list(trainable(model).values())
    fused_s, _ = timed(lambda: estimate(params, training_loss(model, cfg, inputs, labels), len(idx), short))
    unfused_s, _ = timed(lambda: estimate(params, unfused_loss(model, inputs, labels), len(idx), short))
    print(f"{args.steps} SGLD steps, minibatch {SAMPLER.batch}: fast forward {1e3 * fused_s / args.steps:.1f} ms/step, "
          f"TransformerLens forward {1e3 * unfused_s / args.steps:.1f} ms/step: {unfused_s / fused_s:.2f}x")

    seconds, out = timed(lambda: llc(probe))
    steps = SAMPLER.chains * SAMPLER.draws
    print(f"λ̂ with the defaults ({steps} steps): {seconds:.1f} s, {describe(out)}")
    if args.full_batch:
        seconds_full, out_full = timed(lambda: llc(probe, replace(SAMPLER, batch=len(idx))))
        print(f"the same with every training pair per step: {seconds_full:.1f} s, {describe(out_full)}")

    if args.curve:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print("--curve: no CUDA GPU here")
            return
        total, values = 0.0, []
        for e in cfg.checkpoint_epochs:
            probe = Probe(cfg, load(args.root, cfg, e, args.device), ())
            seconds, out = timed(lambda: llc(probe))
            total += seconds
            values.append(float(out["llc"]))
        print(f"curve: {len(values)} checkpoints in {total:.0f} s ({total / len(values):.1f} s each) on "
              f"{args.device}; λ̂ from {np.nanmin(values):.2f} to {np.nanmax(values):.2f}")
    elif not torch.cuda.is_available():
        print("no GPU here: --device cuda --curve times a whole run's curve where one is lent")


if __name__ == "__main__":
    main()
