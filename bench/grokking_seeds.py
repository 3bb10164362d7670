"""Grokking times over model seeds at the canonical settings (p = 113, data seed 598, AdamW lr
1e-3, weight decay 1, betas (0.9, 0.98), training fraction 0.3, full batch), beside the
published ones.

``--preset quick`` runs the quick preset's settings instead (p = 59, lr 6e-3). ``--variant warmup``
trains with the original code's linear warm-up (``LambdaLR(min(step / 10, 1))``: the first step
at lr 0, full lr from the 11th), to measure what separates our timings from published ones
(docs/analyses.md); the original code's initialisation is ``--init nanda``.

Each seed trains (``tasks.training.train``: the fast objective, compiled, no store, one thread)
for an epoch budget, the test split evaluated every 10 epochs; the record is the first evaluated
epoch with test accuracy >= 0.5 and >= 0.95. A seed stops early, within ~5 s of training, once it
reaches 0.95 (nothing after that epoch is needed). A seed that does not reach a threshold within
the budget is reported as "not by <budget>" with its last test accuracy. One line of JSON per
seed is appended to ``--out`` as it finishes, so a killed run resumes where it stopped (seeds
already recorded for the same scheme and a budget at least as large are not run again) and
``--report`` prints whatever has finished.

    nice -n 10 .venv/bin/python bench/grokking_seeds.py [--init legacy|native] [--seeds 1-8]
        [--epochs 20000] [--procs 2] [--device cpu|cuda] [--out bench/grokking_seeds.jsonl]
        [--preset canonical|quick] [--variant warmup] [--report]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import numpy as np

THRESHOLDS = (0.5, 0.95)
PUBLISHED = (  # the anchors the canonical preset's timings are compared with
    ("Nanda et al. 2023 (one run)", "cleanup ends near 13,300"),
    ("TransformerLens grokking demo (one run)", "~14,000"),
    ("GROKVERSE, 10 seeds of the same setup", "5,625 - 10,275, median 7,588"),
)


class Reached(Exception):
    """Raised from the progress callback once the last threshold is reached: stops training."""


def first_epochs(test_acc: np.ndarray) -> dict[str, int | None]:
    """The first epoch whose test accuracy is >= each threshold (``None``: never); NaN (epochs
    not evaluated) never counts."""
    out = {}
    for t in THRESHOLDS:
        hits = np.flatnonzero(np.nan_to_num(test_acc, nan=-1.0) >= t)
        out[str(t)] = int(hits[0]) if hits.size else None
    return out


def apply_variant(variant: str, optimizer) -> None:
    """Change ``optimizer``'s steps to the original code's ``variant`` (see the module
    docstring); ``""`` changes nothing."""
    import torch

    if variant == "warmup":
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(step / 10, 1))
        step = optimizer.step

        def step_then_schedule(*args, **kwargs):
            out = step(*args, **kwargs)
            schedule.step()
            return out

        optimizer.step = step_then_schedule
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: warmup")


def train_seed(init: str, seed: int, epochs: int, device: str, preset_name: str = "canonical",
               variant: str = "") -> dict:
    """Train one model seed at the preset's settings; its record (see the module docstring)."""
    import torch

    from tasks.config import preset
    from tasks.model import build_model
    from tasks.training import make_optimizer, pick_device, train

    torch.set_num_threads(1)
    cfg = preset(preset_name, seed=seed, init=init, num_epochs=epochs, checkpoint_epochs=(0,), test_every=10)
    dev = pick_device(device)
    model = build_model(cfg, dev)
    optimizer = make_optimizer(model, cfg)
    apply_variant(variant, optimizer)
    seen: dict = {}

    def on_progress(epoch, series):
        seen.update(epoch=epoch, series=series)
        if (first_epochs(series.test_acc[: epoch + 1])[str(THRESHOLDS[-1])]) is not None:
            raise Reached

    start = time.monotonic()
    try:
        series = train(cfg, model, optimizer, on_progress=on_progress, progress_every_s=5.0)
        last, stopped = epochs - 1, False
    except Reached:
        series, last, stopped = seen["series"], seen["epoch"], True
    acc = series.test_acc[: last + 1]
    evaluated = np.flatnonzero(~np.isnan(acc))
    return {"init": init, "seed": seed, "preset": preset_name, "variant": variant, "budget": epochs, "first": first_epochs(acc), "trained_to": last,
            "last_test_acc": float(acc[evaluated[-1]]), "stopped_early": stopped,
            "seconds": round(time.monotonic() - start, 1), "device": str(dev)}


def _train(args: tuple) -> dict:
    return train_seed(*args)


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def setup(r: dict) -> tuple:
    """What a record trained: (init, preset, variant); records without the last two are canonical."""
    return r["init"], r.get("preset", "canonical"), r.get("variant", "")


def done(records: list[dict], key: tuple, seed: int, epochs: int) -> bool:
    """Whether ``records`` settle this seed of setup ``key`` at this budget: trained at least as
    far, or reached."""
    return any(setup(r) == key and r["seed"] == seed and (r["budget"] >= epochs or r["stopped_early"])
               for r in records)


def seeds_arg(text: str) -> list[int]:
    """"1-8" or "1,2,5" -> the seeds."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _epoch(value: int | None, budget: int) -> str:
    return f"{value:,}" if value is not None else f"not by {budget:,}"


def report(records: list[dict], key: tuple, seeds: list[int], epochs: int) -> str:
    """Per seed and the distribution (min / median / max) of the first epochs of setup ``key``
    (init, preset, variant), beside the published anchors; a seed not yet recorded is named as
    unfinished."""
    by_seed = {r["seed"]: r for r in records if setup(r) == key and r["seed"] in seeds}
    init, preset_name, variant = key
    lines = [f"init {init}, preset {preset_name}{f', variant {variant}' if variant else ''}, budget {epochs:,} "
             f"epochs, first epoch with test accuracy >= 0.5 / >= 0.95:"]
    for seed in seeds:
        r = by_seed.get(seed)
        if r is None:
            lines.append(f"  seed {seed}: unfinished")
            continue
        note = "stopped at 0.95" if r["stopped_early"] else f"test accuracy {r['last_test_acc']:.2f} at {r['trained_to']:,}"
        lines.append(f"  seed {seed}: {_epoch(r['first']['0.5'], r['budget'])} / "
                     f"{_epoch(r['first']['0.95'], r['budget'])}  ({note}; {r['seconds']:.0f} s on {r['device']})")
    for t in map(str, THRESHOLDS):
        # a seed that never got there counts as later than any that did
        values = sorted(r["first"][t] if r["first"][t] is not None else math.inf for r in by_seed.values())
        if values:
            show = lambda v: f"{v:,.0f}" if v != math.inf else f"not by {epochs:,}"  # noqa: E731
            lines.append(f"  >= {t}: min {show(values[0])}, median {show(statistics.median_low(values))}, "
                         f"max {show(values[-1])} over {len(values)} seeds"
                         f" ({sum(v == math.inf for v in values)} not by the budget)")
    lines.append("published:")
    lines += [f"  {who}: {what}" for who, what in PUBLISHED]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", default="legacy")
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("1-8"))
    ap.add_argument("--epochs", type=int, default=20_000)
    ap.add_argument("--procs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("bench/grokking_seeds.jsonl"))
    ap.add_argument("--preset", default="canonical", choices=("canonical", "quick"))
    ap.add_argument("--variant", default="", choices=("", "warmup"))
    ap.add_argument("--report", action="store_true", help="print what has finished, train nothing")
    args = ap.parse_args()
    key = (args.init, args.preset, args.variant)
    todo = [s for s in args.seeds if not done(load(args.out), key, s, args.epochs)]
    if todo and not args.report:
        procs = 1 if args.device.startswith("cuda") else max(1, min(args.procs, len(todo)))
        jobs = [(args.init, s, args.epochs, args.device, args.preset, args.variant) for s in todo]
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            for record in pool.imap_unordered(_train, jobs):
                with args.out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"seed {record['seed']}: {record['first']} ({record['seconds']:.0f} s)", flush=True)
    print(report(load(args.out), key, args.seeds, args.epochs))


if __name__ == "__main__":
    main()
