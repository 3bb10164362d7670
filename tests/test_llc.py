"""The LLC estimator (tasks/analyses/llc.py): a known answer (linear regression, λ = d/2),
seeding, the health flags, and the analysis on a run: the loss it samples is the training loss
as trained, and it runs only for runs that ask for it."""

import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from tasks import analyses
from tasks.analyses import BY_NAME, in_store, variables
from tasks.analyses.llc import SAMPLER, Sampler, estimate, llc, summarise

pytest.importorskip("devinterp")


def _regression(n: int = 500, d: int = 10):
    """Least squares with unit noise: L(w) = mean((y - Xw)²)/2, a regular model with d
    parameters, at its minimiser w*."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.randn(d, generator=g, dtype=torch.float64) + torch.randn(n, generator=g, dtype=torch.float64)
    w = torch.linalg.lstsq(X, y[:, None]).solution[:, 0].requires_grad_(True)

    def loss(idx):
        xb, yb = (X, y) if idx is None else (X[idx], y[idx])
        return 0.5 * ((yb - xb @ w) ** 2).mean()

    return X, w, loss


def test_linear_regression_recovers_half_the_parameter_count():
    X, w, loss = _regression()
    n, d = X.shape
    s = Sampler(step=1e-4, gamma=1.0, nbeta=1000.0, batch=n, chains=4, draws=1000, burn_in=100)
    # the exact value at this γ: nβ/2 tr(H (nβ H + γ I)^-1), H = XᵀX/n; → d/2 as γ/nβ → 0
    H = X.T @ X / n
    exact = float(s.nbeta / 2 * torch.trace(H @ torch.linalg.inv(s.nbeta * H + s.gamma * torch.eye(d, dtype=H.dtype))))
    assert exact == pytest.approx(d / 2, rel=0.01)
    out = estimate([w], loss, n, s)
    assert float(out["llc"]) == pytest.approx(d / 2, rel=0.1)
    assert not out["llc_diverged"] and not out["llc_nonstationary"]
    assert out["llc_trace"].shape == (4, 1000) and out["llc_chain"].shape == (4,)


def test_a_rerun_gives_the_same_numbers_and_leaves_the_weights():
    X, w, loss = _regression()
    before = w.detach().clone()
    s = Sampler(step=1e-4, gamma=1.0, nbeta=1000.0, batch=100, chains=2, draws=60, burn_in=10, seed=3)
    first = estimate([w], loss, len(X), s)
    torch.manual_seed(123)  # the global RNG plays no part
    second = estimate([w], loss, len(X), s)
    assert torch.equal(w.detach(), before)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    other = estimate([w], loss, len(X), replace(s, seed=4))
    assert not np.array_equal(other["llc_trace"], first["llc_trace"])


S = Sampler(nbeta=10.0, chains=4, draws=100, burn_in=20)


def _trace(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def test_burn_in_is_left_out_and_lambda_is_nbeta_times_the_excess_loss():
    trace = np.full((4, 100), 1.5)
    trace[:, :20] = 100.0  # burn-in: ignored
    trace[:, 20:] += np.tile([0.1, -0.1], 40)  # stationary wiggle around 1.5
    out = summarise(trace, 1.0, S)
    assert float(out["llc"]) == pytest.approx(10 * 0.5)
    assert float(out["llc_std"]) == pytest.approx(0.0, abs=1e-12)
    assert not out["llc_diverged"] and not out["llc_nonstationary"]


def test_a_chain_that_goes_non_finite_or_leaves_the_basin_is_flagged_diverged():
    trace = np.full((4, 100), 1.5)
    trace[2, 50:] = np.nan
    out = summarise(trace, 1.0, S)
    assert out["llc_diverged"] and float(out["llc"]) == pytest.approx(5.0)  # the finite chains' mean
    trace = np.full((4, 100), 1.5)
    trace[1] = 4.0  # mean sampled loss above ln p (p = 31: 3.43)
    assert summarise(trace, 1.0, S, ceiling=math.log(31))["llc_diverged"]
    assert not summarise(np.full((4, 100), 1.5), 1.0, S, ceiling=math.log(31))["llc_diverged"]
    untrained = np.full((4, 100), 3.5)  # a model at chance (ln 31 = 3.43) stays near it
    assert not summarise(untrained, 3.43, S, ceiling=math.log(31))["llc_diverged"]


def test_a_loss_still_drifting_in_the_last_draws_is_flagged_nonstationary():
    rng = np.random.default_rng(0)
    rising = 1.0 + np.linspace(0, 0.5, 80) + 0.01 * rng.standard_normal((4, 80))
    trace = np.concatenate([np.full((4, 20), 1.0), rising], axis=1)
    assert summarise(trace, 1.0, S)["llc_nonstationary"]
    flat = 1.25 + 0.01 * rng.standard_normal((4, 100))
    assert not summarise(flat, 1.0, S)["llc_nonstationary"]


def test_the_analysis_samples_the_training_loss_as_trained(smoke_run):
    """The checkpoint's loss the chains start from is the run's recorded train loss at that
    epoch (answer position, training pairs, float64), not an average over positions."""
    from store.run_store import open_run
    from tasks import checkpoints as ckpt
    from tasks.analyses.probe import Probe
    from store import layout
    from tasks.model import build_model

    root, cfg = smoke_run
    epoch = cfg.checkpoint_epochs[-1]
    model = build_model(cfg)
    ckpt.load_into(model, layout.checkpoint_path(root, cfg.run_id, epoch), cfg, epoch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = replace(SAMPLER, chains=2, draws=30, burn_in=10)
    out = llc(Probe(cfg, model, ()), s)
    recorded = open_run(root, cfg.run_id, mode="r").series()["train_loss"][epoch]
    assert float(out["llc_init_loss"]) == pytest.approx(recorded, rel=1e-6)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # sampled on a copy
    assert out["llc_trace"].shape == (2, 30) and np.isfinite(out["llc_trace"]).all()
    assert (out["llc_trace"] < math.log(cfg.p)).all()


@pytest.fixture
def small_llc(smoke_run, tmp_path, monkeypatch):
    """A copy of the smoke run, and the LLC row at 2 chains x 20 draws (arrays of those sizes)."""
    from tasks.analyses import llc as module

    root, cfg = smoke_run
    shutil.copytree(root, tmp_path / "runs")
    monkeypatch.setattr(module.llc, "__defaults__", (replace(SAMPLER, chains=2, draws=20, burn_in=5),))
    row = BY_NAME["llc"]
    small = replace(row, outputs=tuple(replace(v, sizes={k: {"chain": 2, "draw": 20}[k] for k in v.sizes})
                                       for v in row.outputs))
    monkeypatch.setattr(analyses, "ANALYSES", tuple(small if a is row else a for a in analyses.ANALYSES))
    monkeypatch.setitem(BY_NAME, "llc", small)
    return str(tmp_path / "runs"), cfg


def test_only_runs_that_ask_for_it_get_the_llc(small_llc):
    from store.run_store import open_run
    from tasks import runs

    root, cfg = small_llc
    store = open_run(root, cfg.run_id, mode="r")
    assert "llc" not in [a.name for a in in_store(store.has)] and not store.has("llc")
    assert runs.pending_epochs(root, cfg.run_id) == []
    runs.add_analyses(root, cfg.run_id, ("llc",))
    assert runs.pending_epochs(root, cfg.run_id) == list(cfg.checkpoint_epochs)
    epoch = cfg.checkpoint_epochs[-1]
    assert runs.analyze_epoch(root, cfg.run_id, epoch) == ["llc"]
    store = open_run(root, cfg.run_id, mode="r")
    first = store.read("llc", epoch), store.read("llc_trace", epoch)
    assert store.array_attrs("llc_trace")["dims"] == ("epoch", "chain", "draw")
    assert store.array_attrs("llc")["sampler"] == SAMPLER.as_dict()
    assert runs.analyze_epoch(root, cfg.run_id, epoch) == []  # done, same version
    runs.analyze_epoch(root, cfg.run_id, epoch, ["llc"], force=True)
    assert store.read("llc", epoch) == first[0]
    np.testing.assert_array_equal(store.read("llc_trace", epoch), first[1])


@pytest.mark.slow
def test_tdw_analyze_llc_runs_one_prefect_task_per_checkpoint(small_llc, prefect_harness):
    from flows.analyze import analyze
    from store.run_store import open_run

    root, cfg = small_llc
    assert analyze(cfg.run_id, root, llc=True) == list(cfg.checkpoint_epochs)
    store = open_run(root, cfg.run_id, mode="r")
    assert store.done_mask("llc", BY_NAME["llc"].version()).all()
    assert np.isfinite([store.read("llc", e) for e in cfg.checkpoint_epochs]).all()
    assert analyze(cfg.run_id, root) == []  # asked for once, kept: nothing left


def test_the_sampler_settings_are_part_of_the_version():
    row = BY_NAME["llc"]
    assert row.optional and row.params == SAMPLER.as_dict()
    assert replace(row, params=replace(SAMPLER, step=2e-4).as_dict()).version() != row.version()


def test_other_chain_or_draw_counts_replace_the_arrays(smoke_run, tmp_path):
    """A variable's own dimensions (the LLC's chain, draw) join the store's sizes, and a change of
    their size (other sampler settings) replaces the array and clears its done record."""
    from store.run_store import open_run
    from store.schema import Variable

    root, cfg = smoke_run
    shutil.copytree(root, tmp_path / "runs")
    st = open_run(str(tmp_path / "runs"), cfg.run_id)
    n = len(cfg.checkpoint_epochs)

    def declare(draws: int, label: str):
        return [Variable("x_trace", ("epoch", "draw"), "float64", "x", "x", sizes={"draw": draws},
                         attrs={"analysis": "x", "sampler": label}), Variable("x_done", ("epoch",), "int64", "d", "d")]

    st.ensure_variables(declare(3, "a"))
    st.write_epoch("x_trace", cfg.checkpoint_epochs[0], np.ones(3))
    st.mark_done("x", cfg.checkpoint_epochs[0], "x@1")
    assert st.array("x_trace").shape == (n, 3) and st.sizes()["draw"] == 3
    st.ensure_variables(declare(3, "b"))
    assert st.array_attrs("x_trace")["sampler"] == "b" and st.is_done("x", cfg.checkpoint_epochs[0], "x@1")
    st.ensure_variables(declare(5, "b"))
    st = open_run(str(tmp_path / "runs"), cfg.run_id)
    assert st.array("x_trace").shape == (n, 5) and st.sizes()["draw"] == 5
    assert not st.is_done("x", cfg.checkpoint_epochs[0], "x@1")


def test_llc_without_devinterp_is_one_line_and_exit_2(smoke_run, monkeypatch, capsys):
    import importlib.util

    from cli.main import main

    root, cfg = smoke_run
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "devinterp" else find(name, *a))
    assert main(["analyze", cfg.run_id, "--runs", root, "--llc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[llc]"' in err
