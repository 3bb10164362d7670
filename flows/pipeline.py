"""The deployable entry point: train a run (analysis fanned out as checkpoints land), then
analyse anything still missing, then publish a summary. Its parameters are the preset and the
run knobs (``tasks.knobs``), so the Prefect UI shows them, each with its help."""

from __future__ import annotations

import numpy as np
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.analyze import analyze_flow, fan_out_runner
from flows.names import pipeline_run_name
from flows.train import train_flow
from store.layout import runs_root
from store.run_store import open_run
from tasks.knobs import DEFAULT_PRESET, build_config, knob_parameters
from tasks.runs import run_status


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
@knob_parameters()
def pipeline(preset: str = DEFAULT_PRESET, *, runs_dir: str | None = None, device: str | None = None,
             threads: int = 1, scheduler: str | None = None, compile_mode: str = "auto", llc: bool = False,
             **knobs) -> str:
    """Train and analyse one run; returns its run id. Its parameters are the preset and the
    run knobs of ``tasks.knobs`` (``None`` keeps the preset's value), then where and how it
    runs; ``scheduler``: a Dask scheduler address to run the analysis fan-out on (default:
    threads in this process); ``llc``: also estimate the local learning coefficient of every
    checkpoint (after training; ``tasks.analyses.llc``)."""
    cfg = build_config(preset, **knobs)
    root = runs_root(runs_dir)
    train = train_flow.with_options(task_runner=fan_out_runner(scheduler, threads=1))
    run_id = train(cfg.to_dict(), root, device=device, threads=threads, compile_mode=compile_mode)
    analyze_flow.with_options(task_runner=fan_out_runner(scheduler))(run_id, root, threads=threads, llc=llc)
    create_markdown_artifact(summary_markdown(root, run_id), key="run-summary",
                             description=f"summary of {run_id}")
    return run_id


if __name__ == "__main__":
    pipeline()
