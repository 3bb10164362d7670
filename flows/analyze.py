"""Analyse an existing run: only the checkpoints whose analyses are missing or stale.

The fan-out runs on two threads by default; ``fan_out_runner(scheduler)`` puts it on a Dask
cluster instead (``analyze_flow.with_options(task_runner=fan_out_runner("tcp://host:8786"))``):
the tasks are the same and pass only references, so each Dask worker opens the store itself.
"""

from __future__ import annotations

import sys

import torch
from prefect import flow, unmapped
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from store.layout import runs_root
from tasks.runs import add_analyses
from tasks.steps import analyze_checkpoint, consolidate_finished, pending_epochs


def fan_out_runner(scheduler: str | None = None, threads: int = 2) -> TaskRunner:
    """Threads on this machine, or the Dask cluster whose scheduler is at ``scheduler``
    (e.g. ``tcp://10.0.0.5:8786``; every worker needs this project installed and the runs root
    reachable, e.g. on object storage)."""
    if scheduler:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=scheduler)
    return ThreadPoolTaskRunner(max_workers=threads)


@flow(name="analyze", flow_run_name="analyze-{run_id}", task_runner=fan_out_runner())
def analyze_flow(run_id: str, runs_dir: str | None = None, threads: int = 1, llc: bool = False) -> list[int]:
    """Fan out one task per pending checkpoint; returns the epochs analysed. A finished run on
    an object store then gets its metadata consolidated. ``llc``: the run asks for the local
    learning coefficient from now on (``tasks.analyses.llc``; it stays asked for)."""
    torch.set_num_threads(threads)
    root = runs_root(runs_dir)
    if llc:
        add_analyses(root, run_id, ("llc",))
    epochs = pending_epochs(root, run_id)
    if epochs:
        analyze_checkpoint.map(unmapped(root), unmapped(run_id), epochs).result()
    consolidate_finished(root, run_id)
    return epochs


def analyze(run_id: str, runs_dir: str | None = None, threads: int = 1,
            scheduler: str | None = None, llc: bool = False) -> list[int]:
    """``analyze_flow`` with its fan-out on threads, or on the Dask cluster at ``scheduler``."""
    return analyze_flow.with_options(task_runner=fan_out_runner(scheduler))(run_id, runs_dir, threads, llc)


if __name__ == "__main__":
    analyze_flow(sys.argv[1])
