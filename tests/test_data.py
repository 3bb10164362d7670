import torch

from tasks.data import full_probe, labels, operand_grid, split


def test_probe_is_a_major_with_equals_token():
    p = 7
    x = full_probe(p)
    assert x.shape == (p * p, 3)
    assert x[3 * p + 5].tolist() == [3, 5, p]
    assert torch.equal(labels(p), (x[:, 0] + x[:, 1]) % p)


def test_operand_grid_enumerates_the_probe_rows_in_order():
    p = 7
    grid = operand_grid(p)
    assert list(grid) == ["a", "b"]
    pairs = torch.cartesian_prod(*grid.values())  # row-major: the last operand fastest
    assert torch.equal(pairs, full_probe(p)[:, :2])


def test_split_sizes_match_reference_and_partition():
    train, test = split(113, 0.3, 598)
    assert (len(train), len(test)) == (3_830, 8_939)
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(113 * 113))


def test_split_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = split(31, 0.5, 1)
    after = torch.rand(1)
    assert torch.equal(before, after)
    assert torch.equal(a[0], split(31, 0.5, 1)[0])
    assert not torch.equal(a[0], split(31, 0.5, 2)[0])
