"""Grokking times over model seeds at the canonical settings (p = 113, data seed 598, AdamW lr
1e-3, weight decay 1, betas (0.9, 0.98), training fraction 0.3, full batch), beside the
published ones.

``--preset quick`` runs the quick preset's settings instead (p = 59, lr 6e-3). ``--variant``
changes one thing towards the original code of Nanda et al. 2023, to measure what separates our
timings from published ones (docs/analyses.md); the original code's initialisation is ``--init
nanda``:

- ``warmup``: its linear warm-up (``LambdaLR(min(step / 10, 1))``: the first step at lr 0, full
  lr from the 11th);
- ``tl``: nothing but the forward: TransformerLens's over all three positions (``model(x)[:, -1]``),
  the control for the two below, which the fast forward cannot train;
- ``biases``: as ``tl``, with the MLP biases ``b_in`` and ``b_out`` trained (from zero) and, as
  in the original's single AdamW group, decayed;
- ``classes``: as ``tl``, with p + 1 output classes (the original's unembedding is ``d_vocab``
  wide, so ``=`` is a class the softmax must push down); the extra row of ``W_U`` is drawn at the
  scheme's scale from its own generator, every other weight is the seed's.

Each seed trains (``tasks.training.train``: the fast objective, compiled, no store, one thread)
for an epoch budget, the test split evaluated every 10 epochs; the record is the first evaluated
epoch with test accuracy >= 0.5 and >= 0.95. A seed stops early, within ~5 s of training, once it
reaches 0.95 (nothing after that epoch is needed). A seed that does not reach a threshold within
the budget is reported as "not by <budget>" with its last test accuracy. One line of JSON per
seed is appended to ``--out`` as it finishes, so a killed run resumes where it stopped (seeds
already recorded for the same scheme and a budget at least as large are not run again) and
``--report`` prints whatever has finished.

    nice -n 10 .venv/bin/python bench/grokking_seeds.py [--init legacy|native] [--seeds 1-8]
        [--epochs 20000] [--procs CORES] [--device auto|cpu|cuda] [--out bench/grokking_seeds.jsonl]
        [--preset canonical|quick] [--variant warmup|tl|biases|classes] [--report]
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
    elif variant not in ("", *TL_VARIANTS):
        raise ValueError(f"unknown variant {variant!r}: warmup, {', '.join(TL_VARIANTS)}")


TL_VARIANTS = ("tl", "biases", "classes")  # trained through TransformerLens's forward (train_tl)


def variant_model(cfg, variant: str, device):
    """The seed's model, changed as ``variant`` says (see the module docstring)."""
    import math

    import torch

    from tasks.model import build_model

    model = build_model(cfg, device)
    if variant == "biases":
        for name, prm in model.named_parameters():
            if name.endswith(".bias") and ".mlp." in name:
                prm.requires_grad_(True)
    elif variant == "classes":
        head = model.head._original_component
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        scale = head.weight.std().item() if cfg.model.init == "native" else (
            1 / math.sqrt(cfg.d_vocab) if cfg.model.init == "nanda" else 0.8 / math.sqrt(cfg.model.d_model))
        row = torch.randn(1, head.weight.shape[1], generator=gen) * scale
        head.weight = torch.nn.Parameter(torch.cat([head.weight.detach(), row.to(head.weight.device)]))
        if head.bias is not None:  # a buffer of zeros
            head.bias = torch.zeros(head.out_features + 1, device=head.weight.device)
        head.out_features += 1
    return model


def train_tl(cfg, model, optimizer, device) -> tuple[np.ndarray, int, bool]:
    """Full-batch training through TransformerLens's forward, float64 loss, the test split every
    10 epochs, until test accuracy reaches the last threshold: ``(test accuracy per epoch (NaN
    where not evaluated), the last epoch trained, whether it stopped early)``."""
    import torch
    import torch.nn.functional as F

    from tasks import data

    probe, targets = data.full_probe(cfg).to(device), data.labels(cfg).to(device)
    train_idx, test_idx = (i.to(device) for i in data.split(cfg))
    x_train, y_train, x_test, y_test = probe[train_idx], targets[train_idx], probe[test_idx], targets[test_idx]
    test_acc = np.full(cfg.num_epochs, np.nan)
    for epoch in range(cfg.num_epochs):
        loss = F.cross_entropy(model(x_train)[:, -1].double(), y_train)
        if epoch % 10 == 0:
            with torch.no_grad():
                test_acc[epoch] = (model(x_test)[:, -1].argmax(-1) == y_test).double().mean().item()
            if test_acc[epoch] >= THRESHOLDS[-1]:
                return test_acc, epoch, True
        if epoch < cfg.num_epochs - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return test_acc, cfg.num_epochs - 1, False


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
    start = time.monotonic()
    if variant in TL_VARIANTS:
        model = variant_model(cfg, variant, dev)
        acc, last, stopped = train_tl(cfg, model, make_optimizer(model, cfg), dev)
        return record(init, seed, preset_name, variant, epochs, acc[: last + 1], last, stopped, start, dev)
    model = build_model(cfg, dev)
    optimizer = make_optimizer(model, cfg)
    apply_variant(variant, optimizer)
    seen: dict = {}

    def on_progress(epoch, series):
        seen.update(epoch=epoch, series=series)
        if (first_epochs(series.test_acc[: epoch + 1])[str(THRESHOLDS[-1])]) is not None:
            raise Reached

    try:
        series = train(cfg, model, optimizer, on_progress=on_progress, progress_every_s=5.0)
        last, stopped = epochs - 1, False
    except Reached:
        series, last, stopped = seen["series"], seen["epoch"], True
    return record(init, seed, preset_name, variant, epochs, series.test_acc[: last + 1], last, stopped, start, dev)


def record(init, seed, preset_name, variant, epochs, acc, last, stopped, start, dev) -> dict:
    """One seed's line of JSON; ``acc``: its test accuracy through epoch ``last``."""
    evaluated = np.flatnonzero(~np.isnan(acc))
    return {"init": init, "seed": seed, "preset": preset_name, "variant": variant, "budget": epochs,
            "first": first_epochs(acc), "trained_to": last, "last_test_acc": float(acc[evaluated[-1]]),
            "stopped_early": stopped, "seconds": round(time.monotonic() - start, 1), "device": str(dev)}


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
    from tasks.published import GROKKING

    lines += [f"  {who}: {what}" for who, what in GROKKING]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from tasks.config import INITS

    ap.add_argument("--init", default="legacy", choices=INITS)
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("1-8"))
    ap.add_argument("--epochs", type=int, default=20_000)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="seeds at once on a CPU (default: one "
                    "per core); one on a GPU")
    ap.add_argument("--device", default="auto", help="auto (default: a GPU when present), cpu or cuda")
    ap.add_argument("--out", type=Path, default=Path("bench/grokking_seeds.jsonl"))
    ap.add_argument("--preset", default="canonical", choices=("canonical", "quick"))
    ap.add_argument("--variant", default="", choices=("", "warmup", *TL_VARIANTS))
    ap.add_argument("--report", action="store_true", help="print what has finished, train nothing")
    args = ap.parse_args()
    key = (args.init, args.preset, args.variant)
    todo = [s for s in args.seeds if not done(load(args.out), key, s, args.epochs)]
    if todo and not args.report:
        from tasks.training import pick_device

        on_gpu = pick_device(args.device).type == "cuda"
        procs = 1 if on_gpu else max(1, min(args.procs, len(todo)))
        jobs = [(args.init, s, args.epochs, args.device, args.preset, args.variant) for s in todo]
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            for record in pool.imap_unordered(_train, jobs):
                with args.out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"seed {record['seed']}: {record['first']} ({record['seconds']:.0f} s)", flush=True)
    print(report(load(args.out), key, args.seeds, args.epochs))


if __name__ == "__main__":
    main()
