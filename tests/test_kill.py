"""Training killed with SIGKILL at random moments, and while writing a checkpoint, resumes to a
bit-identical result, and leaves no process of its own running."""

import os
import random
import time

import pytest

from store import layout
from tests.same_run import assert_same_run
from tasks import checkpoints as ckpt
from tests import children
from tests.children import Child

SCHEDULE = dict(num_epochs=600, checkpoint_epochs=tuple(range(0, 600, 25)))


def _train(root: str, kill_after: float | None = None, kill_on_partial: bool = False) -> bool:
    """Train in a child process; SIGKILL it ``kill_after`` seconds after training starts, or
    (with ``kill_on_partial``) while a checkpoint or state file is half-written. True if it
    finished. A killed child's processes (its guard among them) are all gone afterwards."""
    env = {ckpt.FAULT_WRITE_DELAY: "30"} if kill_on_partial else {}
    child = Child(children.train, root, *SCHEDULE.values(), env=env)
    if kill_after is None and not kill_on_partial:
        assert child.wait(300) == 0, child.error
        return True
    child.wait_started()
    deadline = time.monotonic() + (60 if kill_on_partial else kill_after)
    while time.monotonic() < deadline and child.poll() is None:
        if kill_on_partial and _partials(root, ".safetensors."):  # a checkpoint or state write
            break
        time.sleep(0.01)  # the kill moment is what this test varies: poll until it comes
    if child.poll() is None:
        child.kill()
        child.wait(30)
        assert len(child.killed) > 1, f"the child's guard was not running: {child.killed}"
        children.wait_gone(child.killed)  # no process of the killed run is left
        return child.returncode == 0  # -SIGKILL, unless it finished just before the kill
    return child.returncode == 0


def _partials(root: str, infix: str = "") -> list[str]:
    return [f for d, _, fs in os.walk(root) for f in fs if f.endswith(".partial") and infix in f]


def _saved_epoch(root: str) -> int:
    """The epoch a restart resumes from (its saved training state), -1 if none yet."""
    (run_id,) = layout.list_run_ids(root)
    path = layout.train_state_path(root, run_id)
    return int(ckpt.read_checkpoint(path)[1]["epoch"]) if os.path.exists(path) else -1


def _every_checkpoint_whole(root: str) -> None:
    for run_id in layout.list_run_ids(root):
        folder = layout.checkpoint_dir(root, run_id)
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.endswith(".safetensors"):
                ckpt.read_checkpoint(os.path.join(folder, name))  # raises if half-written


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_bit_identically(tmp_path):
    """Five kills at random moments and one while a checkpoint is being written: every
    restart resumes, no checkpoint is ever unreadable, and the end is bit-identical."""
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    t = time.monotonic()
    _train(straight)
    whole = time.monotonic() - t  # kill moments are fractions of it, so any machine gets 5 kills
    rng = random.Random(7)
    kills, resumed_from = 0, []
    for attempt in range(6):  # each restart trains a little further before its kill
        finished = _train(killed, kill_on_partial=True) if attempt == 2 else \
            _train(killed, kill_after=rng.uniform(0.05, 0.15) * whole)
        if finished:
            break
        kills += 1
        if attempt == 2:
            assert _partials(killed, ".safetensors."), "the kill during a write left its temporary file"
        _every_checkpoint_whole(killed)
        resumed_from.append(_saved_epoch(killed))
    assert kills >= 5
    assert max(resumed_from) > 0, f"no kill came after training had saved progress: {resumed_from}"
    _train(killed)
    (run_id,) = layout.list_run_ids(straight)
    assert_same_run(straight, killed, run_id, with_state=True)
    leftovers = [f for d, _, fs in os.walk(os.path.join(killed, run_id)) for f in fs if f.endswith(".partial")]
    assert leftovers == []
