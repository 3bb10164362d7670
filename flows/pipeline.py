"""The deployable entry point: train a run (analysis fanned out as checkpoints land), then
analyse anything still missing, then publish a summary. Its parameters are the run config, so
the Prefect UI shows them."""

from __future__ import annotations

import numpy as np
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.analyze import analyze_flow
from flows.train import train_flow
from store.layout import runs_root
from tasks.config import preset as make_preset
from tasks.runs import run_status
from store.run_store import open_run


def build_config(preset: str = "quick", p: int | None = None, seed: int | None = None,
                 data_seed: int | None = None, frac_train: float | None = None,
                 num_epochs: int | None = None, lr: float | None = None,
                 weight_decay: float | None = None, checkpoints: list[int] | None = None):
    """A preset with overrides (``None`` keeps the preset's value)."""
    return make_preset(preset, p=p, seed=seed, data_seed=data_seed, frac_train=frac_train,
                       num_epochs=num_epochs, lr=lr, weight_decay=weight_decay,
                       checkpoint_epochs=tuple(checkpoints) if checkpoints else None)


def grokking_epoch(test_acc: np.ndarray, threshold: float = 0.95) -> int | None:
    """First epoch whose measured test accuracy reaches ``threshold``."""
    hits = np.flatnonzero(np.nan_to_num(test_acc, nan=0.0) >= threshold)
    return int(hits[0]) if len(hits) else None


def summary_markdown(root: str, run_id: str) -> str:
    status = run_status(root, run_id)
    series = open_run(root, run_id, mode="r").series()
    last = {k: v[~np.isnan(v)][-1] if (~np.isnan(v)).any() else float("nan") for k, v in series.items()}
    grok = grokking_epoch(series["test_acc"])
    return "\n".join([
        f"# Run `{run_id}`", "",
        "| measure | value |", "|---|---|",
        f"| epochs trained | {status['trained_through'] + 1} / {status['num_epochs']} |",
        f"| checkpoints analysed | {status['analysed']} / {status['checkpoints']} |",
        f"| final train loss | {last['train_loss']:.3g} |",
        f"| final test loss | {last['test_loss']:.3g} |",
        f"| final test accuracy | {last['test_acc']:.4f} |",
        f"| grokking epoch (test acc >= 0.95) | {grok if grok is not None else 'not reached'} |",
        "", f"Open it: `TDW_RUNS={root} panel serve viz/app.py` (or `tdw serve`).",
    ])


@flow(name="pipeline", flow_run_name="pipeline-{preset}")
def pipeline(preset: str = "quick", p: int | None = None, seed: int | None = None,
             data_seed: int | None = None, frac_train: float | None = None,
             num_epochs: int | None = None, lr: float | None = None,
             weight_decay: float | None = None, checkpoints: list[int] | None = None,
             runs_dir: str | None = None, device: str | None = None, threads: int = 1) -> str:
    """Train and analyse one run; returns its run id."""
    cfg = build_config(preset, p, seed, data_seed, frac_train, num_epochs, lr, weight_decay, checkpoints)
    root = runs_root(runs_dir)
    run_id = train_flow(cfg.to_dict(), root, device=device, threads=threads)
    analyze_flow(run_id, root, threads=threads)
    create_markdown_artifact(summary_markdown(root, run_id), key="run-summary",
                             description=f"summary of {run_id}")
    return run_id


if __name__ == "__main__":
    pipeline()
