"""The local learning coefficient (LLC, λ̂) of a checkpoint, estimated with SGLD around it
(Lau et al. 2023; the devinterp library's SGLD optimiser with localisation).

Chains sample ``w`` from ``exp(-nβ L_n(w) - γ/2 |w - w*|²)`` around the checkpoint's weights
``w*`` with devinterp's ``SGMCMC.sgld`` update ``Δw = -ε/2 (nβ ∇L_B(w) + γ (w - w*)) + N(0, ε)``,
``L_B`` the loss of a minibatch of training rows. Then

    λ̂ = nβ (E[L_B(w)] - L_n(w*))

with the expectation over the draws after burn-in and over chains. ``L_n`` is the training loss
exactly as trained: the answer position only, the training pairs, float64 (``objective`` of
``tasks.training``, the fast forward where it applies), not devinterp's default loss averaged
over every token position. Each chain draws its minibatches and its noise from its own seeded
generators (never the global RNG, which concurrent analysis threads share), so a rerun gives the
same numbers. devinterp is an optional extra (``pip install -e ".[llc]"``), imported on first use.

Health flags: ``diverged``, a chain's loss went non-finite or its mean sampled loss reached the
``ceiling`` (ln of the number of classes: a uniform guess, out of the basin), or twice the
checkpoint's loss where that is higher (an untrained model starts at the ceiling); ``nonstationary``,
λ̂ of the kept draws' second half differs from their first half's by more than 10% of λ̂ (at
least 1) plus twice that drift's standard error over chains.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

INSTALL_HINT = 'the LLC needs devinterp: pip install -e ".[llc]"'


@dataclass(frozen=True)
class Sampler:
    """SGLD settings (chosen on the p = 113 run: docs/analyses.md, "LLC")."""

    step: float = 1e-4  # ε, the SGLD step size
    gamma: float = 1000.0  # γ, the localisation strength (100 let chains leave the basin)
    nbeta: float = 100.0  # nβ, the inverse temperature times n
    batch: int = 512  # training rows per SGLD step (all of them when fewer)
    chains: int = 4
    draws: int = 200  # SGLD steps per chain, one draw each
    burn_in: int = 100  # the first draws, left out of λ̂ (γ ε / 2 = 0.05: settled in ~20)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


SAMPLER = Sampler()


def _sgld(params: list[torch.Tensor], s: Sampler):
    try:
        from devinterp.optim import SGMCMC
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return SGMCMC.sgld(params, lr=s.step, nbeta=s.nbeta, localization=s.gamma)


def _batches(n: int, size: int, steps: int, gen: torch.Generator):
    """``steps`` index tensors of ``size`` rows each, walking fresh permutations of ``n`` rows."""
    size = min(size, n)
    order, at = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if at + size > n:
            order, at = torch.randperm(n, generator=gen), 0
        yield order[at:at + size]
        at += size


def estimate(params: list[torch.Tensor], loss: Callable[[torch.Tensor | None], torch.Tensor], n: int,
             s: Sampler = SAMPLER, ceiling: float = math.inf) -> dict[str, np.ndarray]:
    """λ̂ around the current values of ``params`` (leaf tensors that ``loss`` reads; moved
    during sampling and restored after). ``loss(idx)``: the 0-d mean loss over data rows
    ``idx`` (an int64 index tensor), or over all ``n`` rows for ``None``; float64 where it
    matters. Returns ``llc`` (λ̂, mean over the chains that did not go non-finite), ``llc_std``
    (their standard deviation), ``llc_chain`` (chain,), ``llc_trace`` (chain, draw): the sampled
    minibatch loss per draw in nats (NaN after a chain went non-finite), ``llc_init_loss``
    (``L_n(w*)``), ``llc_diverged`` and ``llc_nonstationary`` (module docstring)."""
    device = params[0].device
    start = [p.detach().clone() for p in params]
    with torch.no_grad():
        init = float(loss(None))
    trace = torch.full((s.chains, s.draws), math.nan, dtype=torch.float64, device=device)
    for chain in range(s.chains):
        with torch.no_grad():
            for p, w in zip(params, start):
                p.copy_(w)
        batch_gen = torch.Generator().manual_seed(s.seed * 1000 + chain)
        noise_gen = torch.Generator(device).manual_seed(s.seed * 1000 + chain + 500)
        opt = _sgld(params, s)
        for draw, idx in enumerate(_batches(n, s.batch, s.draws, batch_gen)):
            value = loss(idx.to(device))
            value.backward()
            trace[chain, draw] = value.detach()
            opt.step(noise_generator=noise_gen)
            opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        for p, w in zip(params, start):
            p.copy_(w)
    return summarise(trace.cpu().numpy(), init, s, ceiling)


def summarise(trace: np.ndarray, init: float, s: Sampler, ceiling: float = math.inf) -> dict[str, np.ndarray]:
    """λ̂, its spread and health flags from the sampled losses ``trace`` (chain, draw) and the
    checkpoint's loss ``init`` (see :func:`estimate`)."""
    kept = trace[:, s.burn_in:]
    finite = np.isfinite(kept).all(axis=1)
    per_chain = s.nbeta * (kept.mean(axis=1) - init)
    good = per_chain[finite]
    llc = float(good.mean()) if len(good) else math.nan
    diverged = not finite.all() or bool((kept[finite].mean(axis=1) >= max(ceiling, 2 * init)).any())
    half = kept.shape[1] // 2
    drift = s.nbeta * (kept[finite, half:].mean(axis=1) - kept[finite, :half].mean(axis=1))
    error = drift.std(ddof=1) / math.sqrt(len(drift)) if len(drift) > 1 else 0.0
    nonstationary = len(drift) == 0 or abs(drift.mean()) > max(1.0, 0.1 * abs(llc)) + 2 * error
    return {
        "llc": np.float64(llc),
        "llc_std": np.float64(good.std(ddof=1) if len(good) > 1 else math.nan),
        "llc_chain": per_chain,
        "llc_trace": trace,
        "llc_init_loss": np.float64(init),
        "llc_diverged": np.bool_(diverged),
        "llc_nonstationary": np.bool_(nonstationary),
    }


def training_loss(model: torch.nn.Module, cfg, inputs: torch.Tensor, labels: torch.Tensor):
    """``loss(idx)`` for :func:`estimate`: the training objective (``tasks.training.objective``)
    of ``model`` on rows ``idx`` of ``inputs`` (rows, 3) and ``labels`` (rows,), all rows for
    ``None``."""
    from tasks.training import objective

    f = objective(model, cfg)
    device = next(model.parameters()).device
    x, y = inputs.to(device), labels.to(device)

    def loss(idx: torch.Tensor | None) -> torch.Tensor:
        return f(x, y)[0] if idx is None else f(x[idx], y[idx])[0]

    return loss


def llc(probe, s: Sampler = SAMPLER) -> dict[str, np.ndarray]:
    """λ̂ of the probe's checkpoint on its training pairs (:func:`estimate`), sampled on a copy
    of the model (the probe's model is shared). ``ceiling``: ln(number of classes)."""
    from tasks.model import trainable

    model = copy.deepcopy(probe.model)
    idx = probe.train_idx
    loss = training_loss(model, probe.cfg, probe.inputs[idx], probe.labels[idx])
    return estimate(list(trainable(model).values()), loss, len(idx), s, math.log(probe.cfg.d_vocab_out))
