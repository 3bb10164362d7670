"""Sweeps: train and analyse a grid of runs (every combination of the knobs' sweep axes:
model seeds x data seeds x primes x training fractions x learning rates x weight decays, see
``tasks.knobs``) as child runs, each with its own run id.

On a CPU the children run one process per core with one torch thread each (measured on the
2-core machine: ~1.7x the throughput of one two-thread process); ``concurrency`` overrides it.
On a GPU they share the device one at a time. Each child is a task run named after its run id,
grouped under the sweep's flow run in the Prefect UI. Nothing but ids, configs and paths
crosses processes: each child opens its run itself. Running the same sweep again resumes it:
finished runs are skipped, interrupted ones continue from their last saved state.
"""

from __future__ import annotations

import contextlib
import os

import torch
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner

from flows.pipeline import final_values, grokking_epoch
from cli.terminal import Bar
from store.layout import runs_root
from store.run_store import open_run
from tasks import progress, runs
from tasks.config import RunConfig
from tasks.knobs import BY_NAME, KNOBS, grid, knob_parameters
from tasks.training import pick_device


def default_concurrency(device: str | None) -> int:
    """One process per core on CPU; one at a time on a GPU."""
    return 1 if pick_device(device).type == "cuda" else max(1, os.cpu_count() or 1)


def _one_thread() -> None:
    torch.set_num_threads(1)


def train_and_analyze_run(root: str, run_id: str, config: dict, device: str | None = None,
                          compile_mode: str = "auto") -> dict:
    """One child, in its own process: train (or resume), then analyse whatever is missing,
    writing progress for the parent to read. Returns the run's summary row."""
    cfg = runs.prepare_run(root, RunConfig.from_dict(config))
    assert cfg.run_id == run_id, (cfg.run_id, run_id)
    runs.train_run(root, cfg, device=device, compile_mode=compile_mode)  # writes its progress file
    for epoch in runs.analysis_to_do(root, cfg.run_id):
        runs.analyze_epoch(root, cfg.run_id, epoch)
    return summary_row(root, cfg.run_id)


child = task(train_and_analyze_run, name="sweep-run", task_run_name="{run_id}", cache_policy=NO_CACHE)


ALWAYS_SHOWN = ("p", "task", "seed", "data_seed", "frac_train", "lr", "weight_decay")


def summary_row(root: str, run_id: str) -> dict:
    """The run's identity knobs (``tasks.knobs``, by name) and its final measures."""
    cfg = runs.load_config(root, run_id)
    store = open_run(root, run_id, mode="r")
    series = store.series()
    last = final_values(series)
    return {
        "run_id": run_id, "knobs": {k.name: k.value(cfg) for k in KNOBS if k.identity},
        "train_loss": last["train_loss"], "test_loss": last["test_loss"], "test_acc": last["test_acc"],
        "grokking_epoch": grokking_epoch(series["test_acc"]), "key_frequencies": store.key_frequencies(),
    }


def summary_markdown(rows: list[dict], failed: dict[str, str]) -> str:
    """One line per run: the knobs in ``ALWAYS_SHOWN``, then every other knob whose value
    differs between the runs (a sweep over ``--layers`` shows its layers), then the measures."""
    varying = [k.name for k in KNOBS if k.identity and k.name not in ALWAYS_SHOWN
               and len({repr(r["knobs"].get(k.name)) for r in rows}) > 1]
    shown = [name for name in (*ALWAYS_SHOWN, *varying) if any(name in r["knobs"] for r in rows)]
    head = [*(BY_NAME[name].label or name for name in shown), "train loss", "test loss", "test acc",
            "grokking epoch", "key frequencies"]
    lines = [
        f"# Sweep: {len(rows)} run(s) finished, {len(failed)} failed", "",
        "| run id | " + " | ".join(_short(h) for h in head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    for r in rows:
        grok = r["grokking_epoch"] if r["grokking_epoch"] is not None else "not reached"
        keys = ", ".join(map(str, r["key_frequencies"] or [])) or "-"
        knobs = [_cell(r["knobs"].get(name)) for name in shown]
        lines.append(f"| `{r['run_id']}` | " + " | ".join(knobs) + f" | {r['train_loss']:.3g} | "
                     f"{r['test_loss']:.3g} | {r['test_acc']:.3f} | {grok} | {keys} |")
    for run_id, why in failed.items():
        lines.append(f"\nFailed: `{run_id}`: {why}")
    lines.append("\nGrokking epoch: the first epoch with test accuracy >= 0.95. "
                 "Compare the runs in the viewer (`tdw serve`).")
    return "\n".join(lines)


def _short(label: str) -> str:
    """A column heading: the Train page's label without its parenthesis."""
    return label.split(" (")[0]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


class SweepFailed(RuntimeError):
    """Some child runs failed (the others finished; running the sweep again resumes them)."""


def _watch(root: str, configs: list[RunConfig], futures: dict, bar: Bar | None) -> None:
    """Until every child is final: a terminal bar and a Prefect progress artifact (at most
    about once a second) from the children's progress files."""
    total = sum(c.num_epochs for c in configs)
    artifact = create_progress_artifact(0.0, description=f"sweep of {len(configs)} runs: epochs trained")
    while True:
        pending = [f for f in futures.values() if not f.state.is_final()]
        snaps = {c.run_id: progress.read(root, c.run_id) for c in configs}
        done = sum(progress.fraction(snaps[c.run_id]) * c.num_epochs for c in configs)
        finished = len(futures) - len(pending)
        active = [f"{rid[:12]} {progress.describe(s)}" for rid, s in snaps.items()
                  if s and progress.fraction(s) < 1 and not futures[rid].state.is_final()]
        update_progress_artifact(artifact, 100.0 * done / total)
        if bar:
            text = f"{finished}/{len(configs)} runs done" + (f" | {' | '.join(active)}" if active else "")
            bar.update(done / total, text, force=not pending)
        if not pending:
            return
        pending[0].wait(timeout=1.0)


def _children_report_here():
    """Child processes report to this flow's API: a configured server, or else the temporary
    one this process started (without this, each child would start a temporary server of its
    own, and its task run would not appear under the sweep)."""
    if PREFECT_API_URL.value():
        return contextlib.nullcontext()
    with get_client(sync_client=True) as client:
        url = str(client.api_url)
    return temporary_settings({PREFECT_API_URL: url})


@flow(name="sweep", flow_run_name="sweep-{preset}")
@knob_parameters(axes=True)
def sweep_flow(preset: str = "smoke", *, runs_dir: str | None = None, device: str | None = None,
               concurrency: int | None = None, compile_mode: str = "auto", show_progress: bool = True,
               **knobs) -> list[str]:
    """Train and analyse every run of the grid (``tasks.knobs.grid``: a list per sweep axis, one
    value for each other knob; ``None`` keeps the preset's); returns the run ids. Publishes a
    progress artifact while it runs and a summary table artifact at the end."""
    configs = grid(preset, **knobs)
    root = runs_root(runs_dir)
    workers = concurrency or default_concurrency(device)
    bar = Bar(f"sweep {len(configs)} runs") if show_progress else None
    pool = ProcessPoolTaskRunner(max_workers=min(workers, len(configs)), initializer=_one_thread)
    with _children_report_here(), pool as runner:
        futures = {c.run_id: runner.submit(child, {"root": root, "run_id": c.run_id, "config": c.to_dict(),
                                                   "device": device, "compile_mode": compile_mode})
                   for c in configs}
        _watch(root, configs, futures, bar)
    rows, failed = [], {}
    for run_id, future in futures.items():
        if future.state.is_completed():
            rows.append(future.result())
        else:
            failed[run_id] = str(future.state.message or future.state.name)
    create_markdown_artifact(summary_markdown(rows, failed), key="sweep-summary",
                             description=f"sweep of {len(configs)} runs")
    if failed:
        raise SweepFailed(f"{len(failed)} of {len(configs)} runs failed: {', '.join(failed)}")
    return [c.run_id for c in configs]


if __name__ == "__main__":
    sweep_flow(seeds=[1, 2], data_seeds=[1, 2])
