"""Zoom into a trained run (``zoom-<run id>``): replay its training to write checkpoints at new
epochs (``tasks.zoom``), add them to the store, then fan out their analyses, the key-frequency
ones included, one task per new checkpoint. Progress of the replay and of the analyses: a
Prefect progress artifact each and, on a terminal, a bar each."""

from __future__ import annotations

import sys

import torch
from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import flow_run

from cli.terminal import Bar
from flows.analyze import fan_out_runner
from store.layout import runs_root
from tasks import zoom as zooming
from tasks.steps import analyze_checkpoint, consolidate_finished, pending_epochs


def zoom_run_name() -> str:
    return f"zoom-{flow_run.parameters.get('run_id', 'run')}"


@task(name="replay", cache_policy=NO_CACHE)
def replay(root: str, run_id: str, epochs: list[int], device: str | None = None) -> str:
    """Write the new checkpoints by replaying training and add them to the store; returns
    where the replay started, in words."""
    logger = get_run_logger()
    first = min(epochs)
    artifact = create_progress_artifact(0.0, description=f"replaying {run_id} to epoch {max(epochs)}")
    bar = Bar(f"zoom {run_id}") if sys.stderr.isatty() else None
    point = zooming.replay_point(root, zooming.load_config(root, run_id), first)
    logger.info(point.describe())

    def report(epoch: int) -> None:
        done = (epoch - point.epoch + 1) / max(1, max(epochs) - point.epoch + 1)
        update_progress_artifact(artifact, 100.0 * done)
        if bar:
            bar.update(done, f"epoch {epoch}")

    done = zooming.zoom(root, run_id, epochs, device, on_progress=report)
    update_progress_artifact(artifact, 100.0)
    if bar:
        bar.close(1.0, "replayed" if done else "checkpoints already written")
    return point.describe() if done else "every new checkpoint was already written"


@flow(name="zoom", flow_run_name=zoom_run_name, task_runner=fan_out_runner())
def zoom_flow(run_id: str, epochs: list[int], runs_dir: str | None = None, device: str | None = None,
              threads: int = 1) -> list[int]:
    """Add checkpoints at ``epochs`` (inside the trained range) to run ``run_id`` and analyse
    them, with any other checkpoint whose analyses are missing or stale (a zoom run again
    after a kill completes). Returns the epochs analysed."""
    torch.set_num_threads(threads)
    root = runs_root(runs_dir)
    if epochs:
        replay(root, run_id, epochs, device)
    pending = pending_epochs(root, run_id)
    if pending:
        analyse(root, run_id, pending)
    consolidate_finished(root, run_id)
    return pending


def analyse(root: str, run_id: str, epochs: list[int]) -> None:
    """One ``analyze-<epoch>`` task per checkpoint, their progress shown as they finish."""
    artifact = create_progress_artifact(0.0, description=f"analysing {len(epochs)} checkpoint(s) of {run_id}")
    bar = Bar(f"analyse {run_id}") if sys.stderr.isatty() else None
    futures = analyze_checkpoint.map(unmapped(root), unmapped(run_id), epochs)
    for done, future in enumerate(as_completed(futures), 1):
        future.result()
        update_progress_artifact(artifact, 100.0 * done / len(epochs))
        if bar:
            bar.update(done / len(epochs), f"analysed {done}/{len(epochs)}")
    if bar:
        bar.close(1.0, f"analysed {len(epochs)}")
