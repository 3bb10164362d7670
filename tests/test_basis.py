"""The cyclic Fourier bases (tasks.problems.basis): orthonormal rows, labels, frequency rows, the
even-n top frequency, and the token <-> position map."""

import numpy as np
import pytest
import torch

from tasks.problems.basis import cyclic


def _logs(p: int, g: int):
    return cyclic(p - 1, [pow(g, i, p) for i in range(p - 1)], f"Fourier basis of Z_{p - 1} over discrete logs base {g}", generator=g)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 12, 30, 96, 113])
def test_orthonormal(n):
    M = cyclic(n, range(n), f"Fourier basis of Z_{n}").matrix
    assert M.shape == (n, n) and M.dtype == np.float64
    np.testing.assert_allclose(M @ M.T, np.eye(n), atol=1e-12)


@pytest.mark.parametrize("p", [5, 31, 113])
def test_z_p_matches_the_torch_formula(p):
    """The residue basis is the cos/sin basis built in torch from the same formula: equal to one
    float64 rounding (numpy's and torch's cos and norm round independently)."""
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * torch.pi * k * x / p), torch.sin(2 * torch.pi * k * x / p)]
    ref = torch.stack(rows)
    ref = (ref / ref.norm(dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(cyclic(p, range(p), "").matrix, ref, rtol=0, atol=2.3e-16)


def test_labels_freqs_and_rows_odd():
    b = cyclic(7, range(7), "Fourier basis of Z_7")
    assert b.labels == ("const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3")
    assert b.freqs == (1, 2, 3)
    assert [b.rows(k) for k in b.freqs] == [(1, 2), (3, 4), (5, 6)]
    with pytest.raises(ValueError):
        b.rows(4)


def test_even_top_frequency_is_one_alternating_row():
    b = cyclic(6, range(6), "Fourier basis of Z_6")
    assert b.labels == ("const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3")
    assert b.freqs == (1, 2, 3)
    assert b.rows(2) == (3, 4) and b.rows(3) == (5,)
    np.testing.assert_array_equal(b.matrix[5] * np.sqrt(6), [1, -1, 1, -1, 1, -1])
    # the cos n/2 row is the character of Z_n at k = n/2: cos(pi x)
    np.testing.assert_allclose(b.matrix[5], np.cos(np.pi * np.arange(6)) / np.sqrt(6), atol=1e-15)


def test_position_inverts_values_and_marks_tokens_outside():
    b = _logs(7, 3)  # 3 is a primitive root mod 7: values 1, 3, 2, 6, 4, 5
    assert b.values == (1, 3, 2, 6, 4, 5) and b.n == 6 and b.generator == 3
    np.testing.assert_array_equal(b.position(np.array(b.values)), np.arange(6))
    np.testing.assert_array_equal(b.position([0, 7, -1, 100]), [-1, -1, -1, -1])
    assert b.position(np.array([[2, 6], [0, 1]])).tolist() == [[2, 3], [-1, 0]]


def test_rejects_a_malformed_basis():
    with pytest.raises(ValueError):
        cyclic(4, [1, 2, 3], "too few values")
    with pytest.raises(ValueError):
        cyclic(3, [1, 1, 2], "repeated values")
