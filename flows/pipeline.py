"""The deployable entry point: train a run (analysis fanned out as checkpoints land), then
analyse anything still missing, then publish a summary. Its parameters are the run config, so
the Prefect UI shows them."""

from __future__ import annotations

import numpy as np
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.analyze import analyze_flow, fan_out_runner
from flows.names import pipeline_run_name
from flows.train import train_flow
from store.layout import runs_root
from tasks.config import preset as make_preset
from tasks.runs import run_status
from store.run_store import open_run


def build_config(preset: str = "quick", p: int | None = None, seed: int | None = None,
                 data_seed: int | None = None, frac_train: float | None = None,
                 num_epochs: int | None = None, lr: float | None = None,
                 weight_decay: float | None = None, checkpoints: list[int] | None = None,
                 d_mlp: int | None = None):
    """A preset with overrides (``None`` keeps the preset's value; ``d_mlp``: the MLP's width)."""
    return make_preset(preset, p=p, seed=seed, data_seed=data_seed, frac_train=frac_train,
                       num_epochs=num_epochs, lr=lr, weight_decay=weight_decay,
                       checkpoint_epochs=tuple(checkpoints) if checkpoints else None, d_mlp=d_mlp)


def grokking_epoch(test_acc: np.ndarray, threshold: float = 0.95) -> int | None:
    """First epoch whose measured test accuracy reaches ``threshold``."""
    hits = np.flatnonzero(np.nan_to_num(test_acc, nan=0.0) >= threshold)
    return int(hits[0]) if len(hits) else None


def final_values(series: dict[str, np.ndarray]) -> dict[str, float]:
    """Each series' last measured value (NaN where none was measured)."""
    return {k: float(v[~np.isnan(v)][-1]) if (~np.isnan(v)).any() else float("nan") for k, v in series.items()}


def summary_markdown(root: str, run_id: str) -> str:
    status = run_status(root, run_id)
    store = open_run(root, run_id, mode="r")
    series, keys = store.series(), store.key_frequencies()
    last = final_values(series)
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
        f"| key frequencies | {', '.join(map(str, keys)) if keys else 'not chosen'} |",
        "", f"Open it in the viewer: `tdw serve --runs {root}`, then "
        f"[http://127.0.0.1:5006/app?run={run_id}](http://127.0.0.1:5006/app?run={run_id}).",
    ])


@flow(name="pipeline", flow_run_name=pipeline_run_name)
def pipeline(preset: str = "quick", p: int | None = None, seed: int | None = None,
             data_seed: int | None = None, frac_train: float | None = None,
             num_epochs: int | None = None, lr: float | None = None,
             weight_decay: float | None = None, checkpoints: list[int] | None = None,
             runs_dir: str | None = None, device: str | None = None, threads: int = 1,
             scheduler: str | None = None, compile_mode: str = "auto", d_mlp: int | None = None) -> str:
    """Train and analyse one run; returns its run id. ``scheduler``: a Dask scheduler address
    to run the analysis fan-out on (default: threads in this process)."""
    cfg = build_config(preset, p, seed, data_seed, frac_train, num_epochs, lr, weight_decay, checkpoints, d_mlp)
    root = runs_root(runs_dir)
    train = train_flow.with_options(task_runner=fan_out_runner(scheduler, threads=1))
    run_id = train(cfg.to_dict(), root, device=device, threads=threads, compile_mode=compile_mode)
    analyze_flow.with_options(task_runner=fan_out_runner(scheduler))(run_id, root, threads=threads)
    create_markdown_artifact(summary_markdown(root, run_id), key="run-summary",
                             description=f"summary of {run_id}")
    return run_id


if __name__ == "__main__":
    pipeline()
