"""Analytic ground truth for the Fourier analyses (REFERENCE.md check values), in the Fourier
basis of Z_p (add); the other bases are checked in tests/test_bases.py."""

import numpy as np
import pytest
import torch

from tasks import problems
from tasks.analyses.fourier import basis_matrix, embedding_norms, neuron_freq_fraction, per_frequency
from tasks.problems.basis import cyclic

P = 31
B = problems.get("add").basis(P)


def _wave(k: int, p: int = P, fn=torch.cos) -> torch.Tensor:
    a = torch.arange(p, dtype=torch.float64)
    return fn(2 * torch.pi * k * (a[:, None] + a[None, :]) / p)


def test_basis_orthonormal_and_labelled():
    f = basis_matrix(B, torch.float64)
    assert torch.allclose(f @ f.T, torch.eye(P, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(f[0], torch.full((P,), P ** -0.5, dtype=torch.float64))
    x = torch.arange(P, dtype=torch.float64)
    cos3 = torch.cos(2 * torch.pi * 3 * x / P)
    assert torch.allclose(f[B.labels.index("cos 3")], cos3 / cos3.norm())
    assert problems.get("add").basis(5).labels == ("const", "cos 1", "sin 1", "cos 2", "sin 2")


@pytest.mark.parametrize("p", [2, 1])
def test_basis_rejects_tiny_p(p):
    with pytest.raises(ValueError):
        cyclic(p, range(p), "too small")


def test_embedding_spectrum_parseval_and_planted_frequency():
    w = torch.randn(P + 1, 16, dtype=torch.float64)
    out = embedding_norms(w, B)
    assert out["embedding_spectrum"].shape == (P,) and out["embedding_freq_norm"].shape == ((P - 1) // 2,)
    assert np.isclose((out["embedding_spectrum"].astype(np.float64) ** 2).sum(), (w[:P] ** 2).sum().item(), rtol=1e-5)
    x = torch.arange(P, dtype=torch.float64)
    planted = torch.zeros(P + 1, 4, dtype=torch.float64)
    planted[:P, 0] = torch.cos(2 * torch.pi * 5 * x / P)
    planted[:P, 1] = torch.sin(2 * torch.pi * 5 * x / P)
    norms = embedding_norms(planted, B)["embedding_freq_norm"]
    assert norms.argmax() == 4 and np.isclose(norms[4], np.sqrt(P), rtol=1e-5)  # k=5 -> index 4
    assert np.allclose(np.delete(norms, 4), 0, atol=1e-5)


def test_per_frequency_combines_cos_and_sin():
    rows = torch.tensor([9.0, 3.0, 4.0, 0.0, 1.0])
    assert torch.allclose(per_frequency(rows, problems.get("add").basis(5)), torch.tensor([5.0, 1.0]))
    even = cyclic(6, range(6), "Z_6")  # const, cos 1, sin 1, cos 2, sin 2, cos 3
    assert torch.allclose(per_frequency(torch.tensor([9.0, 3.0, 4.0, 0.0, 1.0, -2.0]), even), torch.tensor([5.0, 1.0, 2.0]))


def test_planted_cosine_neuron_is_pure():
    frac = neuron_freq_fraction(_wave(4)[None], B)
    assert frac.shape == (1, 15)
    assert np.isclose(frac[0, 3], 1.0, atol=1e-5) and np.isclose(frac[0].sum(), 1.0, atol=1e-5)


def test_relu_of_cosine_matches_reference_values():
    k = 4
    frac = neuron_freq_fraction(torch.relu(_wave(k))[None], B)[0]
    assert round(float(frac[k - 1]), 3) == 0.841
    assert round(float(frac[2 * k - 1]), 3) == 0.151


def test_harmonic_folds_mod_p():
    # 2k beyond (p-1)/2 folds to p - 2k
    k = 12
    frac = neuron_freq_fraction(torch.relu(_wave(k))[None], B)[0]
    assert np.isclose(frac[k - 1], 0.841, atol=1e-3)
    assert np.isclose(frac[P - 2 * k - 1], 0.151, atol=1e-3)


def test_constant_neuron_gives_zeros_not_nan():
    frac = neuron_freq_fraction(torch.full((2, P, P), 3.0), B)
    assert np.isfinite(frac).all() and (frac == 0).all()


def test_fractions_bounded_for_random_neurons():
    frac = neuron_freq_fraction(torch.relu(torch.randn(64, P, P)), B)
    assert (frac >= 0).all() and (frac <= 1).all() and (frac.sum(1) <= 1 + 1e-5).all()
