"""Train a run, fanning out one analysis task per checkpoint as soon as it is on disk, so that
analysis overlaps training."""

from __future__ import annotations

import sys
import time

import torch
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows.names import train_run_name
from cli.terminal import Bar
from store.layout import runs_root
from tasks import progress, runs
from tasks.config import RunConfig
from tasks.steps import analyze_checkpoint, prepare_run
from tasks.training import Series


def _reporter(cfg: RunConfig):
    """Progress for the Prefect UI (artifact, at most once a second), the log (every ~10 s) and,
    on a terminal, a progress bar."""
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, description=f"training {cfg.run_id}")
    bar = Bar(f"train {cfg.run_id}") if sys.stderr.isatty() else None
    last_log, shown = [0.0], [-1]

    def report(epoch: int, series: Series) -> None:
        if epoch == shown[0]:
            return
        shown[0] = epoch
        done = (epoch + 1) / cfg.num_epochs
        update_progress_artifact(artifact, 100.0 * done)
        text = progress.describe(progress.snapshot(epoch, cfg.num_epochs, series))
        last = epoch == cfg.num_epochs - 1
        if bar:
            (bar.close if last else bar.update)(done, text)
        if time.monotonic() - last_log[0] > 10 or last:
            last_log[0] = time.monotonic()
            logger.info(text)

    return report


@flow(name="train", flow_run_name=train_run_name,
      task_runner=ThreadPoolTaskRunner(max_workers=1))
def train_flow(config: dict, runs_dir: str | None = None, device: str | None = None,
               analyze: bool = True, threads: int = 1, compile_mode: str = "auto") -> str:
    """Train the run described by ``config`` (``RunConfig.to_dict()``); resumes or extends an
    existing run of the same id. Returns the run id. ``compile_mode``: auto | on | off
    (``tasks.accel.should_compile``)."""
    torch.set_num_threads(threads)  # one thread per process is the robust default on CPU
    root = runs_root(runs_dir)
    cfg = RunConfig.from_dict(prepare_run(root, config))
    futures = []

    def fan_out(epoch: int) -> None:
        futures.append(analyze_checkpoint.submit(root, cfg.run_id, epoch))

    report = _reporter(cfg)
    series = runs.train_run(root, cfg, device=device, on_checkpoint=fan_out if analyze else None,
                            on_progress=report, compile_mode=compile_mode)
    report(cfg.num_epochs - 1, series)  # a run already trained reports nothing on its own
    for future in futures:
        future.result()
    return cfg.run_id


if __name__ == "__main__":
    from tasks.config import preset

    train_flow(preset("quick").to_dict())
