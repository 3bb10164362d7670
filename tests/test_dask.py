"""The analysis fan-out on a Dask cluster: a local cluster of 2 worker processes, given to the
flows by its scheduler address (prefect-dask's task runner). The workers write disjoint epochs
of the same store; the tasks and the store are the ones the thread runner uses."""

from __future__ import annotations

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from flows.analyze import fan_out_runner


def test_fan_out_runner_is_threads_unless_given_a_scheduler():
    from prefect_dask import DaskTaskRunner

    assert isinstance(fan_out_runner(), ThreadPoolTaskRunner)
    runner = fan_out_runner("tcp://127.0.0.1:8786")
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://127.0.0.1:8786"


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    # worker processes get one BLAS/OpenMP thread each (the nanny's default environment)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_port=0) as local:
        yield local


def _executed_per_worker(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


@pytest.mark.slow
def test_pipeline_fans_out_on_two_dask_workers_into_one_store(cluster, root, prefect_harness):
    from flows.analyze import analyze
    from flows.pipeline import pipeline
    from store.run_store import open_run
    from tasks.analyses import STANDARD
    from tasks.config import preset
    from tasks.runs import pending_epochs

    address = cluster.scheduler_address
    before = sum(_executed_per_worker(address).values())
    state = pipeline(preset="smoke", runs_dir=root, device="cpu", scheduler=address, return_state=True)
    assert state.is_completed()
    run_id = state.result()
    cfg = preset("smoke")
    executed = _executed_per_worker(address)
    assert len(executed) == 2
    # one task per checkpoint while training, then one per checkpoint for the analyses
    # that wait for the key frequencies
    assert sum(executed.values()) - before >= 2 * len(cfg.checkpoint_epochs)

    st = open_run(root, run_id)
    keys = st.key_frequencies()
    for analysis in STANDARD:
        assert st.done_mask(analysis.name, analysis.version(keys)).all(), analysis.name
    assert pending_epochs(root, run_id) == []

    st.group["neuron_frequencies_done"][1] = 0  # one record lost: the cluster redoes it alone
    assert analyze(run_id, root, scheduler=address) == [cfg.checkpoint_epochs[1]]
    assert st.done_mask("neuron_frequencies").all()
