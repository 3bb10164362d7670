"""Shared assertion: two copies of a run hold the same bits."""

import numpy as np
import torch

from store import layout
from store.run_store import open_run
from tasks import checkpoints as ckpt


def assert_same_run(root_a: str, root_b: str, run_id: str, with_state: bool = False) -> None:
    """Every checkpoint (and, with ``with_state``, the AdamW resume state) bit-identical, and
    every recorded series equal."""
    for epoch in open_run(root_a, run_id).epochs:
        a, _ = ckpt.read_checkpoint(layout.checkpoint_path(root_a, run_id, int(epoch)))
        b, _ = ckpt.read_checkpoint(layout.checkpoint_path(root_b, run_id, int(epoch)))
        assert all(torch.equal(a[k], b[k]) for k in a), epoch
    sa, sb = open_run(root_a, run_id).series(), open_run(root_b, run_id).series()
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name])
    if with_state:
        a, _ = ckpt.read_checkpoint(layout.train_state_path(root_a, run_id))
        b, _ = ckpt.read_checkpoint(layout.train_state_path(root_b, run_id))
        assert all(torch.equal(a[k], b[k]) for k in a)
