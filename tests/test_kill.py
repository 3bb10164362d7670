"""Training killed with SIGKILL at random moments resumes to a bit-identical result."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from store import layout
from store.run_store import open_run
from tasks import checkpoints as ckpt

TRAIN = """
import sys, torch
torch.set_num_threads(1)
from tasks.config import preset
from tasks.runs import prepare_run, train_run
cfg = prepare_run(sys.argv[1], preset("smoke", num_epochs=600, checkpoint_epochs=tuple(range(0, 600, 25))))
train_run(sys.argv[1], cfg, device="cpu")
print("done", cfg.run_id)
"""


def _train(root: str, kill_after: float | None = None) -> bool:
    """Run training in a subprocess; SIGKILL it after ``kill_after`` seconds. True if it finished."""
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, root], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_after is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return True
    time.sleep(kill_after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        return False
    return proc.returncode == 0


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_bit_identically(tmp_path):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    _train(straight)
    rng = random.Random(7)
    kills = 0
    for _ in range(4):  # the first ~3 s are imports; training takes a few seconds more
        if _train(killed, kill_after=rng.uniform(3.5, 7.0)):
            break
        kills += 1
    _train(killed)
    assert kills >= 1
    (run_id,) = layout.list_run_ids(straight)
    cfg_epochs = open_run(straight, run_id).epochs
    for epoch in cfg_epochs:
        a, _ = ckpt.read_checkpoint(layout.checkpoint_path(straight, run_id, int(epoch)))
        b, _ = ckpt.read_checkpoint(layout.checkpoint_path(killed, run_id, int(epoch)))
        assert all(torch.equal(a[k], b[k]) for k in a), epoch
    sa, sb = open_run(straight, run_id).series(), open_run(killed, run_id).series()
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name])
    sa_state, _ = ckpt.read_checkpoint(layout.train_state_path(straight, run_id))
    sb_state, _ = ckpt.read_checkpoint(layout.train_state_path(killed, run_id))
    assert all(torch.equal(sa_state[k], sb_state[k]) for k in sa_state)
    leftovers = [f for d, _, fs in os.walk(os.path.join(killed, run_id)) for f in fs if f.endswith(".partial")]
    assert leftovers == []
