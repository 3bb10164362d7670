"""Analytic ground truth for the progress measures and weight analyses."""

import math

import numpy as np
import pytest
import torch

from tasks import problems
from tasks.analyses.attention import attention_measures
from tasks.analyses.fourier import key_frequencies
from tasks.analyses.progress import accuracy_from_logits, logit_periodicity, progress_from_logits
from tasks.analyses.weights import gini, measures_from_weights, participation_ratio

P = 13
B = problems.get("add").basis(P)  # the basis positions of addition's answers are the answers


def _pairs(p=P):
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return a, b, (a + b) % p


def _one_hot_logits(p=P) -> torch.Tensor:
    _, _, c = _pairs(p)
    return torch.nn.functional.one_hot(c, p).double()  # (p², p)


def _trig_logits(freqs, p=P, scale=5.0) -> torch.Tensor:
    a, b, _ = _pairs(p)
    cls = torch.arange(p)
    s = ((a + b)[:, None] - cls[None, :]).double()
    return sum(scale * torch.cos(2 * math.pi * k * s / p) for k in freqs).double()


@pytest.mark.parametrize("m", [1, 2, 6])
def test_periodicity_of_ideal_one_hot_logits(m):
    logits = _one_hot_logits()
    keys = list(range(1, m + 1))
    _, _, c = _pairs()
    assert logit_periodicity(logits, c, keys, centre=False) == pytest.approx(2 * m / P, abs=1e-12)
    assert logit_periodicity(logits, c, keys) == pytest.approx(2 * m / (P - 1), abs=1e-12)


def test_periodicity_of_a_trig_model_is_one_and_zero_off_key():
    logits, (_, _, c) = _trig_logits([2, 5]), _pairs()
    assert logit_periodicity(logits, c, [2, 5]) == pytest.approx(1.0, abs=1e-9)
    assert logit_periodicity(logits, c, [3]) == pytest.approx(0.0, abs=1e-9)
    assert logit_periodicity(logits, c, [2]) == pytest.approx(0.5, abs=1e-9)


def test_restricted_and_excluded_loss_of_a_trig_model():
    logits = _trig_logits([3])
    idx = torch.arange(P * P)
    train, test = idx[::3], idx[1::3]
    _, _, c = _pairs()
    out = progress_from_logits(logits, c, c, B, [3], train, test)
    full = torch.nn.functional.cross_entropy(logits, c).item()
    np.testing.assert_allclose(out["restricted_loss"], full, rtol=1e-9)  # nothing else to drop
    assert out["excluded_loss"] == pytest.approx(math.log(P), rel=1e-9)  # nothing left: uniform
    assert out["excluded_loss_by_freq"][2] == pytest.approx(math.log(P), rel=1e-9)
    assert np.isnan(np.delete(out["excluded_loss_by_freq"], 2)).all()  # only key frequencies
    other = progress_from_logits(logits, c, c, B, [3, 4], train, test)["excluded_loss_by_freq"][3]
    assert other == pytest.approx(torch.nn.functional.cross_entropy(logits[train], c[train]).item(), rel=1e-9)
    assert out["logit_periodicity"] == pytest.approx(1.0)


def test_restricted_loss_drops_noise_outside_the_key_frequencies():
    torch.manual_seed(0)
    clean = _trig_logits([3], scale=8.0)
    noisy = clean + 2.0 * _trig_logits([5], scale=1.0)  # a non-key frequency
    idx = torch.arange(P * P)
    _, _, c = _pairs()
    out = progress_from_logits(noisy, c, c, B, [3], idx[::2], idx[1::2])
    assert out["restricted_loss"][2] == pytest.approx(torch.nn.functional.cross_entropy(clean, c).item(), rel=1e-9)


def test_gini_reference_values():
    assert gini(torch.tensor([0.0, 0.0, 3.0, 0.0])) == pytest.approx(1 - 1 / 4)
    assert gini(torch.ones(10)) == pytest.approx(0.0, abs=1e-12)
    assert gini(torch.zeros(5)) == 0.0
    assert 0 < gini(torch.tensor([1.0, 2.0, 3.0])) < gini(torch.tensor([0.1, 0.1, 3.0]))


def test_participation_ratio():
    assert participation_ratio(torch.eye(6)) == pytest.approx(6.0)
    assert participation_ratio(torch.outer(torch.arange(1.0, 5), torch.ones(3))) == pytest.approx(1.0)


def test_weight_measures_shapes_and_sums():
    """Two layers, block weights stacked over them as TransformerLens holds them: each layer's
    W_L is its own W_out's, and each layer's matrices get their own participation ratios."""
    torch.manual_seed(1)
    L = 2
    w = {"W_E": torch.randn(P + 1, 8), "W_pos": torch.randn(3, 8), "W_Q": torch.randn(L, 2, 8, 4),
         "W_K": torch.randn(L, 2, 8, 4), "W_V": torch.randn(L, 2, 8, 4), "W_O": torch.randn(L, 2, 4, 8),
         "W_in": torch.randn(L, 8, 16), "W_out": torch.randn(L, 16, 8), "W_U": torch.randn(8, P)}
    out = measures_from_weights(w, B)
    assert out["sum_sq_weights"][0] == pytest.approx((w["W_E"].double() ** 2).sum().item())
    assert out["sum_sq_weights_total"] == pytest.approx(sum((v.double() ** 2).sum().item() for v in w.values()))
    assert out["wl_freq_norm"].shape == (L, 16, (P - 1) // 2) and out["gini_wl"].shape == (L,)
    one = measures_from_weights({**w, "W_out": w["W_out"][1:]}, B)  # layer 1 alone
    np.testing.assert_allclose(out["wl_freq_norm"][1], one["wl_freq_norm"][0], rtol=1e-6)
    assert out["participation_ratio"].shape == (L, 6) and (out["participation_ratio"] >= 1).all()
    assert out["participation_ratio"][1, 5] == pytest.approx(participation_ratio(w["W_out"][1]))
    assert out["participation_ratio"][0, 0] == pytest.approx(participation_ratio(w["W_Q"][0].permute(1, 0, 2).flatten(1)))
    assert out["participation_ratio_embed"] == pytest.approx(participation_ratio(w["W_E"][:P]))


def test_key_frequencies_from_a_planted_embedding():
    x = torch.arange(P, dtype=torch.float64)
    W_E = torch.zeros(P + 1, 4, dtype=torch.float64)
    W_E[:P, 0] = torch.cos(2 * math.pi * 2 * x / P)
    W_E[:P, 1] = 0.8 * torch.sin(2 * math.pi * 5 * x / P)
    W_E[:P, 2] = 0.1 * torch.cos(2 * math.pi * 4 * x / P)
    assert key_frequencies(W_E, B, threshold=0.5) == [2, 5]


def test_accuracy_per_class():
    logits = _one_hot_logits()
    logits[0] = torch.roll(logits[0], 1)  # pair (0, 0) -> wrong, class 0
    idx = torch.arange(P * P)
    out = accuracy_from_logits(logits, _pairs()[2], idx, idx[:0])
    assert out["checkpoint_accuracy"][0] == pytest.approx(1 - 1 / P**2)
    assert np.isnan(out["checkpoint_accuracy"][1])  # empty split
    assert out["class_accuracy"][0, 0] == pytest.approx(1 - 1 / P) and out["class_accuracy"][0, 1] == 1.0


def test_attention_measures():
    a, b, _ = _pairs()
    to_a = 0.5 + 0.4 * torch.cos(2 * math.pi * 3 * (a + b).double() / P)
    pattern = torch.stack([to_a, 1 - to_a, torch.zeros_like(to_a)], dim=-1)[:, None, :].repeat(1, 2, 1)
    out = attention_measures(pattern, pattern[:, :, 0].T.reshape(-1, P, P), B)
    assert out["attention_mean"].shape == (2, 3)
    np.testing.assert_allclose(out["attention_mean"][:, 0], 0.5, atol=1e-6)
    assert out["head_freq_fraction"][0].argmax() == 2 and out["head_freq_fraction"][0, 2] == pytest.approx(1.0, abs=1e-5)
