"""Faults injected around training and analysis: a second trainer, two creators of the same run,
analysis written from threads and processes at once, and analysis killed mid-write."""

import os
import random
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
import torch

from cli.main import main
from store import layout
from store.run_store import open_run
from tasks import progress
from tasks.analyses import STANDARD
from tasks.config import preset
from tasks.lock import RunBusy, training_lock
from tasks.runs import (analyze_epoch, choose_key_frequencies, pending_epochs, prepare_analysis,
                        prepare_run, train_run)
from tests import children
from tests.children import Child
from tests.same_run import assert_same_run
from tests.wait import wait_for

CHECKPOINTS = (0, 25, 50, 100)


def _train(root: str, num_epochs: int) -> Child:
    return Child(children.train, root, num_epochs, CHECKPOINTS)


@pytest.mark.slow
def test_a_second_trainer_is_refused_while_the_first_runs(tmp_path, capsys):
    root = str(tmp_path)
    cfg = preset("smoke", num_epochs=20_000, checkpoint_epochs=CHECKPOINTS)
    proc = _train(root, cfg.num_epochs)
    try:
        def started():  # training has started (lock held)
            assert proc.poll() is None, proc.error
            return progress.read(root, cfg.run_id) is not None

        wait_for(started, 120, interval=0.1, what="training to start")
        with pytest.raises(RunBusy, match=f"pid {proc.pid}"):
            train_run(root, prepare_run(root, cfg), device="cpu")
        assert main(["train", "--preset", "smoke", "--epochs", "20000", "--runs", root]) == 2
        err = capsys.readouterr().err
        assert "being trained by another process" in err and len(err.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait(30)
    with training_lock(root, cfg.run_id):  # a killed holder leaves no lock behind
        pass


@pytest.mark.slow
def test_two_processes_starting_the_same_new_run_do_not_corrupt_it(smoke_run, tmp_path):
    straight, cfg = smoke_run  # the same config, trained alone (one thread: the same bits)
    racing = str(tmp_path / "racing")
    procs = [_train(racing, cfg.num_epochs) for _ in range(2)]
    outcomes = [(p.wait(300), p.error) for p in procs]
    assert any(rc == 0 for rc, _ in outcomes)
    for rc, err in outcomes:
        assert rc == 0 or err.startswith("RunBusy"), err  # finished, or refused while the other trained
    assert layout.list_run_ids(racing) == [cfg.run_id]
    assert_same_run(straight, racing, cfg.run_id)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run with a checkpoint every 5 epochs, trained, keys chosen, not analysed."""
    root = str(tmp_path_factory.mktemp("trained"))
    cfg = prepare_run(root, preset("smoke", checkpoint_epochs=tuple(range(0, 150, 5))))
    train_run(root, cfg, device="cpu")
    prepare_analysis(root, cfg.run_id)
    choose_key_frequencies(root, cfg.run_id)
    return root, cfg


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory):
    """The same run analysed one epoch after another."""
    src, cfg = trained
    root = str(tmp_path_factory.mktemp("reference"))
    shutil.copytree(layout.run_dir(src, cfg.run_id), layout.run_dir(root, cfg.run_id))
    for epoch in cfg.checkpoint_epochs:
        analyze_epoch(root, cfg.run_id, epoch)
    return root


def _one_thread() -> None:
    torch.set_num_threads(1)  # as the reference: the same reduction order, the same bits


def _copy(trained, tmp_path) -> str:
    src, cfg = trained
    root = str(tmp_path / "runs")
    shutil.copytree(layout.run_dir(src, cfg.run_id), layout.run_dir(root, cfg.run_id))
    return root


def _analysis_arrays(root: str, run_id: str) -> dict[str, np.ndarray]:
    store = open_run(root, run_id, mode="r")
    return {v.name: store.array(v.name)[:] for a in STANDARD for v in a.outputs}


def _same_where_done(root: str, reference: str, run_id: str) -> None:
    """Every epoch an analysis marks done holds exactly the reference's values."""
    store = open_run(root, run_id, mode="r")
    mine, theirs = _analysis_arrays(root, run_id), _analysis_arrays(reference, run_id)
    keys = store.key_frequencies()
    for analysis in STANDARD:
        done = store.done_mask(analysis.name, analysis.version(keys))
        for var in analysis.outputs:
            np.testing.assert_array_equal(mine[var.name][done], theirs[var.name][done], err_msg=var.name)


@pytest.mark.slow
def test_analysis_from_threads_and_processes_at_once_writes_every_epoch_exactly(trained, reference, tmp_path):
    root = _copy(trained, tmp_path)
    _, cfg = trained
    epochs = list(cfg.checkpoint_epochs)
    rng = random.Random(3)
    rng.shuffle(epochs)
    by_process, by_thread = epochs[::2], epochs[1::2]
    with ProcessPoolExecutor(2, mp_context=children.CONTEXT, initializer=_one_thread) as procs, \
            ThreadPoolExecutor(2) as threads:
        futures = [procs.submit(analyze_epoch, root, cfg.run_id, e) for e in by_process]
        futures += [threads.submit(analyze_epoch, root, cfg.run_id, e) for e in by_thread]
        for f in futures:
            f.result()
    assert pending_epochs(root, cfg.run_id) == []
    _same_where_done(root, reference, cfg.run_id)


@pytest.mark.slow
def test_analysis_killed_mid_write_reruns_only_what_is_missing(trained, reference, tmp_path):
    root = _copy(trained, tmp_path)
    _, cfg = trained
    total = len(cfg.checkpoint_epochs)
    killed = 0
    for extra in (0.05, 0.3):  # once some epochs are done, at a moment inside the loop
        before = len(pending_epochs(root, cfg.run_id))
        proc = Child(children.analyse, root, cfg.run_id)
        wait_for(lambda: len(pending_epochs(root, cfg.run_id)) < before or proc.poll() is not None,
                 120, interval=0.02, what="the analysis to finish an epoch")
        time.sleep(extra)  # the moment of the kill, inside the loop: what this test varies
        if proc.poll() is None:
            proc.kill()
            killed += 1
        proc.wait(30)
        _same_where_done(root, reference, cfg.run_id)  # nothing marked done without its data
    assert killed, "the analysis finished before it could be killed"
    left = pending_epochs(root, cfg.run_id)
    assert 0 < len(left) < total

    stale = os.path.join(layout.store_path(root, cfg.run_id), "neuron_activations", "c", "junk.partial")
    os.makedirs(os.path.dirname(stale), exist_ok=True)
    open(stale, "wb").close()
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # a killed writer's, an hour ago
    prepare_analysis(root, cfg.run_id)
    assert not os.path.exists(stale)

    redone = {e: analyze_epoch(root, cfg.run_id, e) for e in cfg.checkpoint_epochs}
    assert {e for e, names in redone.items() if names} == set(left)  # only what was missing
    assert pending_epochs(root, cfg.run_id) == []
    _same_where_done(root, reference, cfg.run_id)
