"""Analyse an existing run: only the checkpoints whose analyses are missing or stale."""

from __future__ import annotations

import sys

import torch
from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from store.layout import runs_root
from tasks.steps import analyze_checkpoint, pending_epochs


@flow(name="analyze", flow_run_name="analyze-{run_id}", task_runner=ThreadPoolTaskRunner(max_workers=2))
def analyze_flow(run_id: str, runs_dir: str | None = None, threads: int = 1) -> list[int]:
    """Fan out one task per pending checkpoint; returns the epochs analysed."""
    torch.set_num_threads(threads)
    root = runs_root(runs_dir)
    epochs = pending_epochs(root, run_id)
    if epochs:
        analyze_checkpoint.map(unmapped(root), unmapped(run_id), epochs).result()
    return epochs


if __name__ == "__main__":
    analyze_flow(sys.argv[1])
