"""A zoom killed with SIGKILL at random moments (replaying, writing a checkpoint, growing the
store, analysing) and run again ends exactly as a zoom that was never interrupted."""

import os
import random
import shutil
import time

import numpy as np
import pytest
import torch

from store import layout
from store.run_store import open_run
from tasks import checkpoints as ckpt
from tests import children
from tests.children import Child

NEW = [310, 320, 330, 340, 350, 360, 370, 380, 390]


def zoom_and_analyse(root: str, run_id: str) -> None:
    """The zoom flow's steps without Prefect: replay and grow, then every pending analysis."""
    from tasks import zoom
    from tasks.runs import analysis_to_do, analyze_epoch

    zoom.zoom(root, run_id, NEW, device="cpu")
    for epoch in analysis_to_do(root, run_id):
        analyze_epoch(root, run_id, epoch)


def _base(root: str) -> str:
    from tasks.config import preset
    from tasks.runs import analysis_to_do, analyze_epoch, prepare_run, train_run

    cfg = prepare_run(root, preset("smoke", num_epochs=400, checkpoint_epochs=(0, 200), state_every=100))
    train_run(root, cfg, device="cpu")
    for epoch in analysis_to_do(root, cfg.run_id):
        analyze_epoch(root, cfg.run_id, epoch)
    return cfg.run_id


def _zoom(root: str, run_id: str, kill_after: float | None = None, kill_on_partial: bool = False) -> bool:
    env = {ckpt.FAULT_WRITE_DELAY: "30"} if kill_on_partial else {}
    child = Child(zoom_and_analyse, root, run_id, env=env)
    child.wait_started()
    if kill_after is None and not kill_on_partial:
        assert child.wait(300) == 0, child.error
        return True
    deadline = time.monotonic() + (60 if kill_on_partial else kill_after)
    while time.monotonic() < deadline and child.poll() is None:
        if kill_on_partial and any(f.endswith(".partial") for f in os.listdir(layout.checkpoint_dir(root, run_id))):
            break
        time.sleep(0.01)  # the kill moment is what this test varies
    if child.poll() is None:
        child.kill()
        child.wait(30)
        children.wait_gone(child.killed)
    return child.returncode == 0


@pytest.mark.slow
def test_a_zoom_killed_at_any_moment_and_run_again_ends_as_an_uninterrupted_one(tmp_path):
    base, straight, killed = (str(tmp_path / name) for name in ("base", "straight", "killed"))
    run_id = _base(base)
    shutil.copytree(base, straight)
    shutil.copytree(base, killed)
    child = Child(zoom_and_analyse, straight, run_id)
    child.wait_started()
    t = time.monotonic()
    assert child.wait(300) == 0, child.error
    whole = time.monotonic() - t  # kill moments are fractions of it
    rng = random.Random(23)
    kills = 0
    for attempt in range(6):
        finished = (_zoom(killed, run_id, kill_on_partial=True) if attempt == 0 else
                    _zoom(killed, run_id, kill_after=rng.uniform(0.05, 0.2) * whole))
        if finished:
            break
        kills += 1
        if attempt == 0:  # killed while writing its first checkpoint: the temporary file is left
            assert any(f.endswith(".partial") for f in os.listdir(layout.checkpoint_dir(killed, run_id)))
    assert kills >= 3, f"{kills} kills (an uninterrupted zoom takes {whole:.1f} s)"
    _zoom(killed, run_id)
    a, b = open_run(straight, run_id), open_run(killed, run_id)
    assert list(a.epochs) == list(b.epochs) == sorted([0, 200, 399, *NEW])
    assert a.config == b.config
    for epoch in NEW:
        wa = ckpt.read_checkpoint(layout.checkpoint_path(straight, run_id, epoch))[0]
        wb = ckpt.read_checkpoint(layout.checkpoint_path(killed, run_id, epoch))[0]
        assert all(torch.equal(wa[k], wb[k]) for k in wa), epoch
    for name in a.variables():
        if a.array_attrs(name)["dims"][:1] == ("epoch",):
            np.testing.assert_array_equal(a.read(name), b.read(name), err_msg=name)
    for name in a.analyses():
        assert b.done_mask(name).all(), name
    leftovers = [f for d, _, fs in os.walk(os.path.join(killed, run_id)) for f in fs if f.endswith(".partial")]
    assert leftovers == []
