"""The Prefect task shells: each loads its inputs by reference (runs root, run id, epoch),
calls a plain step from ``tasks.runs`` and writes to the store. Nothing large crosses Prefect."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import runs


@task(name="prepare-run", cache_policy=NO_CACHE)
def prepare_run(root: str, config: dict) -> dict:
    """Create or reconcile the run and its store skeleton; returns the effective config."""
    return runs.prepare_run(root, runs.RunConfig.from_dict(config)).to_dict()


# Completion lives in the store (done records keyed on each analysis's version), so Prefect's
# own caching stays off: a cache keyed on this shell's source would miss analysis changes.
@task(name="analyze", task_run_name="analyze-{epoch}", cache_policy=NO_CACHE,
      retries=2, retry_delay_seconds=2)
def analyze_checkpoint(root: str, run_id: str, epoch: int) -> list[str]:
    """Analyse one checkpoint; returns the analyses computed (empty when all were current)."""
    return runs.analyze_epoch(root, run_id, epoch)


@task(name="find-pending", cache_policy=NO_CACHE)
def pending_epochs(root: str, run_id: str) -> list[int]:
    """``tasks.runs.analysis_to_do``: arrays and key frequencies ready, the epochs left."""
    return runs.analysis_to_do(root, run_id)


@task(name="consolidate", cache_policy=NO_CACHE)
def consolidate_finished(root: str, run_id: str) -> bool:
    """Consolidate a finished run's store metadata on an object store (after every writer)."""
    return runs.consolidate_finished(root, run_id)
