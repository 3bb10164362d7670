"""Analytic ground truth for the analyses in each task's basis: the discrete-log basis of
Z_(p-1) for mul and div (even n: its top frequency n/2 is one cos row), and Z_p for sub."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tasks.analyses.fourier import embedding_norms, neuron_freq_fraction
from tasks.analyses.probe import Probe
from tasks.analyses.progress import accuracy, progress_measures
from tasks.config import preset
from tasks.problems.basis import cyclic

P = 13  # mul, div: n = 12, g = 2


def _probe(task: str, p: int = P, logits: torch.Tensor | None = None) -> Probe:
    """A probe of a ``task`` run whose logits (and nothing else of a model) are given."""
    probe = Probe(preset("smoke", p=p, task=task), model=None, hooks=())
    probe._logits = logits
    return probe


def _character(k: int, n: int) -> torch.Tensor:
    """``cos(2 pi k (i + j) / n)`` on the (n, n) grid of basis positions."""
    i = torch.arange(n, dtype=torch.float64)
    return torch.cos(2 * math.pi * k * (i[:, None] + i[None, :]) / n)


@pytest.mark.parametrize("k", [1, 4, 5, 6])  # 6 = n/2: the top frequency, a cos row alone
def test_a_character_in_log_space_is_pure(k):
    basis = _probe("mul").basis
    assert basis.n == 12 and basis.generator == 2
    frac = neuron_freq_fraction(_character(k, basis.n)[None], basis)[0]
    assert frac.shape == (6,)
    assert round(float(frac[k - 1]), 3) == 1.000 and np.allclose(np.delete(frac, k - 1), 0, atol=1e-6)


def test_the_same_neuron_in_residue_order_is_not_a_single_frequency():
    """The log-space character laid out by residue (a, b = 1 .. p-1) spreads over frequencies:
    the log basis is what makes it pure."""
    basis = _probe("mul").basis
    wave = _character(2, basis.n)
    by_residue = torch.empty_like(wave)
    order = torch.tensor(basis.values) - 1  # residue - 1 of each log position
    by_residue[order[:, None], order[None, :]] = wave
    frac = neuron_freq_fraction(by_residue[None], cyclic(12, range(1, 13), "residues 1 .. 12"))[0]
    assert frac.max() < 0.9


def test_embedding_top_frequency_norm_is_exact():
    basis = _probe("mul").basis
    W_E = torch.zeros(P + 1, 2, dtype=torch.float64)
    W_E[list(basis.values), 0] = torch.cos(math.pi * torch.arange(12, dtype=torch.float64))  # (-1)^i
    W_E[0, 1] = 7.0  # token 0 is outside the log basis: not part of any norm
    norms = embedding_norms(W_E, basis)
    np.testing.assert_allclose(norms["embedding_freq_norm"], [0, 0, 0, 0, 0, math.sqrt(12)], atol=1e-6)
    assert np.isclose((norms["embedding_spectrum"].astype(float) ** 2).sum(), 12, rtol=1e-6)


def test_another_generator_permutes_the_frequencies():
    """With g' = g^u (u coprime to n) the log positions scale by u^-1, so frequency k of the
    g basis is frequency k·u mod n (folded to 1 .. n/2) of the g' basis: sorted norms agree."""
    g_basis = _probe("mul").basis
    n, u = g_basis.n, 5
    g2 = pow(g_basis.generator, u, P)
    other = cyclic(n, [pow(g2, i, P) for i in range(n)], f"logs base {g2}", generator=g2)
    W_E = torch.randn(P + 1, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a = embedding_norms(W_E, g_basis)["embedding_freq_norm"]
    b = embedding_norms(W_E, other)["embedding_freq_norm"]
    np.testing.assert_allclose(np.sort(a), np.sort(b), rtol=1e-6)
    for k in range(1, n // 2 + 1):
        folded = min(k * u % n, n - k * u % n)
        assert b[folded - 1] == pytest.approx(a[k - 1], rel=1e-6)


@pytest.mark.parametrize("task, p", [("mul", 13), ("div", 13), ("sub", 11)])
def test_ideal_logits_in_the_tasks_basis(task, p):
    """Logits ``sum_k cos(w_k(s_ab - s_c))`` over every frequency (the top one too for even n),
    class 0 of mul/div (never an answer) far below: the restricted loss equals the full loss,
    the excluded loss is ln(number of classes) and the logits are wholly periodic."""
    probe = _probe(task, p)
    basis, s = probe.basis, probe.label_positions
    n = basis.n
    assert (s >= 0).all()
    d = (s[:, None] - torch.arange(n)[None, :]).double()  # (rows, class position)
    in_basis = sum(torch.cos(2 * math.pi * k * d / n) for k in basis.freqs)
    logits = torch.full((len(s), p), -1e3, dtype=torch.float64)
    logits[:, list(basis.values)] = in_basis
    probe._logits = logits
    assert (logits.argmax(1) == probe.labels).all()
    out = progress_measures(probe, list(basis.freqs))
    full = F.cross_entropy(logits, probe.labels).item()
    np.testing.assert_allclose(out["restricted_loss"], full, rtol=1e-9)
    assert out["excluded_loss"] == pytest.approx(math.log(n), rel=1e-9)
    assert out["logit_periodicity"] == pytest.approx(1.0, abs=1e-9)
    assert out["excluded_loss_by_freq"].shape == (n // 2,) and np.isfinite(out["excluded_loss_by_freq"]).all()


def test_div_positions_are_differences_of_logs():
    probe = _probe("div")
    n = probe.basis.n
    i, j = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
    assert torch.equal(probe.label_positions, (i - j) % n)
    assert torch.equal(_probe("mul").label_positions, (i + j) % n)


def test_accuracy_per_class_of_mul_leaves_class_zero_empty():
    probe = _probe("mul")
    probe._logits = F.one_hot(probe.labels, P).double()
    out = accuracy(probe)
    np.testing.assert_array_equal(out["checkpoint_accuracy"], 1.0)
    assert out["class_accuracy"].shape == (3, P)
    assert np.isnan(out["class_accuracy"][:, 0]).all() and (out["class_accuracy"][:, 1:] == 1).all()


@pytest.mark.slow  # trains a model (~5 s)
def test_a_mul_run_trains_and_is_analysed_in_its_log_basis(tmp_path):
    """A smoke-sized mul run at p = 13: every analysis at every checkpoint, on the (12, 12) log
    grid with Z_12's six frequencies, and key frequencies chosen by the rule from the stored
    embedding spectrum."""
    from store.run_store import open_run
    from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run, train_run

    root = str(tmp_path)
    cfg = prepare_run(root, preset("smoke", p=P, task="mul", d_mlp=64))
    epochs = []
    train_run(root, cfg, device="cpu", on_checkpoint=epochs.append)
    keys = choose_key_frequencies(root, cfg.run_id)
    for epoch in epochs:
        analyze_epoch(root, cfg.run_id, epoch)
    st = open_run(root, cfg.run_id, mode="r")
    assert st.attrs["generator"] == 2 and st.sizes()["a"] == 12 and st.sizes()["freq"] == 6
    assert all(st.done_mask(name).all() for name in st.analyses())
    final = epochs[-1]
    norms = st.read("embedding_freq_norm", final)
    assert keys == [k for k in range(1, 7) if norms[k - 1] >= 0.5 * norms.max()]
    assert st.read("neuron_freq_fraction", final).shape == (1, 64, 6)
    assert st.read("neuron_activations", final).shape == (1, 64, 12, 12)
    assert st.read("checkpoint_accuracy", final)[0] == 1.0  # the training pairs are learnt
    assert np.isnan(st.read("class_accuracy", final)[:, 0]).all()  # 0 is never an answer
    assert np.isfinite(st.read("restricted_loss", final)).all()
