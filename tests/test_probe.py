"""The probe is where analyses read the task: its labels and operand grid come from
``tasks.data`` and nowhere else, so a task with other answers is measured against them."""

import math

import numpy as np
import pytest
import torch

from tasks import data
from tasks.analyses.activations import neuron_activations
from tasks.analyses.progress import accuracy, progress_measures
from tasks.analyses.probe import Probe
from tasks.config import preset
from tasks.model import HOOK_POST

P = 7


def _probe(logits: torch.Tensor | None = None) -> Probe:
    """A probe of a p = 7 run whose logits (and nothing else of a model) are given."""
    probe = Probe(preset("smoke", p=P), model=None, hooks=())
    probe._logits = logits
    return probe


def _difference(p: int) -> torch.Tensor:
    x = data.full_probe(preset("smoke", p=p))
    return (x[:, 0] - x[:, 1]) % p


def test_grid_and_labels_come_from_the_task_data():
    probe = _probe()
    assert torch.equal(probe.inputs, data.full_probe(probe.cfg)) and torch.equal(probe.labels, data.labels(probe.cfg))
    assert list(probe.grid) == ["a", "b"] and all(torch.equal(v, torch.arange(P)) for v in probe.grid.values())
    rows = torch.arange(P * P, dtype=torch.float32)
    values = torch.stack([rows, -rows], dim=1)  # (n, 2): row a*p + b holds a*p + b
    on_grid = probe.on_grid(values)
    assert on_grid.shape == (2, P, P) and on_grid[0, 3, 5] == 3 * P + 5 and on_grid[1, 3, 5] == -(3 * P + 5)
    train, test = data.split(probe.cfg)
    assert torch.equal(probe.train_idx, train) and torch.equal(probe.test_idx, test)


def test_accuracy_and_progress_measures_read_the_probes_labels(monkeypatch):
    """Logits that answer (a - b) mod p perfectly: scored against addition's labels they are
    mostly wrong; with the task's labels replaced by subtraction's they are all right, and the
    progress measures see the key frequency along the new answer."""
    s = _difference(P).double()
    c = torch.arange(P, dtype=torch.float64)
    logits = 5.0 * torch.cos(2 * math.pi * 2 * (s[:, None] - c[None, :]) / P)  # peaks at c = (a - b) mod p
    added = accuracy(_probe(logits))["checkpoint_accuracy"]
    assert added[2] == pytest.approx(1 / P)  # only b = 0 agrees

    monkeypatch.setattr(data, "labels", lambda cfg: _difference(cfg.p))
    probe = _probe(logits)
    np.testing.assert_array_equal(accuracy(probe)["checkpoint_accuracy"], 1.0)
    out = progress_measures(probe, [2])
    assert out["logit_periodicity"] == pytest.approx(1.0)
    assert out["excluded_loss"] == pytest.approx(math.log(P), rel=1e-9)  # nothing left: uniform
    full = torch.nn.functional.cross_entropy(logits, _difference(P)).item()
    np.testing.assert_allclose(out["restricted_loss"], full, rtol=1e-9)


def test_maps_on_the_grid_follow_the_probes_grid(monkeypatch):
    """An analysis lays rows out on the probe's grid, never on a (p, p) it assumes: a grid of
    other sizes gives maps of those sizes."""
    post = torch.rand(P * P, 4, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(data, "operand_grid", lambda cfg: {"pair": torch.arange(cfg.p**2), "one": torch.arange(1)})
    probe = _probe()
    probe._cache = {HOOK_POST: post}
    maps = neuron_activations(probe)["neuron_activations"][0]  # layer 0 of 1
    assert maps.shape == (4, P * P, 1)
    np.testing.assert_array_equal(maps[:, :, 0], post.T.half().numpy())
