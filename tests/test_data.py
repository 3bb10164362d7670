import numpy as np
import pytest
import torch

from tasks.config import RunConfig
from tasks.data import full_probe, labels, operand_grid, split
from tasks.problems import PROBLEMS, get


def _cfg(p: int, task: str = "add", **fields) -> RunConfig:
    return RunConfig(p=p, task=task, num_epochs=2, **fields)


def test_probe_is_a_major_with_equals_token():
    p = 7
    x = full_probe(_cfg(p))
    assert x.shape == (p * p, 3)
    assert x[3 * p + 5].tolist() == [3, 5, p]
    assert torch.equal(labels(_cfg(p)), (x[:, 0] + x[:, 1]) % p)


@pytest.mark.parametrize("task", list(PROBLEMS))
def test_operand_grid_enumerates_the_probe_rows_in_order(task):
    cfg = _cfg(7, task)
    grid = operand_grid(cfg)
    assert list(grid) == ["a", "b"]
    assert grid["a"].tolist() == list(get(task).basis(7).values)  # basis order
    pairs = torch.cartesian_prod(*grid.values())  # row-major: the last operand fastest
    assert torch.equal(pairs, full_probe(cfg)[:, :2])
    assert (full_probe(cfg)[:, 2] == 7).all()


@pytest.mark.parametrize("task", list(PROBLEMS))
def test_labels_are_the_tasks_answers_row_by_row(task):
    cfg = _cfg(11, task)
    x = full_probe(cfg)
    y = labels(cfg)
    assert y.dtype == torch.int64 and y.shape == (len(x),)
    assert y.tolist() == get(task).label(x[:, 0].numpy(), x[:, 1].numpy(), 11).tolist()


def test_mul_rows_run_over_the_units_in_log_order():
    """mul at p = 7 (g = 3): operands 3^0 .. 3^5 = 1, 3, 2, 6, 4, 5; row i*6 + j is
    (3^i, 3^j), whose product is 3^(i+j mod 6)."""
    cfg = _cfg(7, "mul")
    grid = operand_grid(cfg)
    assert grid["a"].tolist() == [1, 3, 2, 6, 4, 5]
    x, y = full_probe(cfg), labels(cfg)
    assert x.shape == (36, 3) and 0 not in x[:, :2]
    i, j = 2, 5
    assert x[i * 6 + j].tolist() == [2, 5, 7] and y[i * 6 + j] == pow(3, (i + j) % 6, 7) == 3


def test_split_sizes_match_reference_and_partition():
    train, test = split(_cfg(113, frac_train=0.3, data_seed=598))
    assert (len(train), len(test)) == (3_830, 8_939)
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(113 * 113))


def test_split_of_mul_covers_its_n_squared_rows():
    train, test = split(_cfg(59, "mul", frac_train=0.3))
    assert (len(train), len(test)) == (int(0.3 * 58 * 58), 58 * 58 - int(0.3 * 58 * 58))
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(58 * 58))


def test_add_data_is_unchanged():
    """The probe, labels and split of addition as they were before tasks existed: row a*p + b,
    (a + b) mod p, and a seeded permutation of the p² rows (pinned values)."""
    p = 31
    a, b = np.divmod(np.arange(p * p), p)
    assert full_probe(_cfg(p))[:, :2].tolist() == np.stack([a, b], 1).tolist()
    assert labels(_cfg(p)).tolist() == ((a + b) % p).tolist()
    train, _ = split(_cfg(p, frac_train=0.5, data_seed=1))
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(1))
    assert torch.equal(train, perm[: int(0.5 * p * p)].sort().values)
    assert train[:5].tolist() == [1, 2, 5, 6, 7]  # as the code before tasks drew them


def test_split_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = split(_cfg(31, frac_train=0.5, data_seed=1))
    after = torch.rand(1)
    assert torch.equal(before, after)
    assert torch.equal(a[0], split(_cfg(31, frac_train=0.5, data_seed=1))[0])
    assert not torch.equal(a[0], split(_cfg(31, frac_train=0.5, data_seed=2))[0])
