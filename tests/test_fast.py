"""The fast trainer computes the same function as the TransformerLens forward, at any depth,
with and without LayerNorm, on trained-looking (not just initial) weights: in float64 logits,
gradients and the activations at '=' agree to ~1e-12 (the same mathematics), and in float32, as
training runs, to float32 rounding (<= 1e-5)."""

import copy

import pytest
import torch

from tasks.config import ModelConfig, RunConfig
from tasks.data import full_probe, labels
from tasks.fast import FastForward
from tasks.model import build_model, trainable


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Move the trainable weights away from the symmetric initialisation: each gets
    ``0.05 * N(0, 1)`` noise from its own seeded generator (never the global RNG, which torch
    seeds differently in every process and earlier tests may have drawn from)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prm in trainable(model).values():
            prm.add_(0.05 * torch.randn(prm.shape, generator=gen, dtype=prm.dtype))


def _grads(model, logits_fn, y) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.nn.functional.cross_entropy(logits_fn().double(), y).backward()
    return {n: q.grad.clone() for n, q in trainable(model).items()}


@pytest.mark.parametrize("p,act,task", [(7, "relu", "add"), (31, "relu", "add"), (59, "gelu", "add"),
                                        (13, "relu", "mul"), (13, "gelu", "x2+y2"),
                                        pytest.param(113, "relu", "add", marks=pytest.mark.slow)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_logits_and_gradients_match_transformer_lens(p, act, task, dtype, tol):
    """Every task: only the inputs (mul's leave out token 0) and the labels change."""
    cfg = RunConfig(p=p, task=task, num_epochs=2, model=ModelConfig(act_fn=act))
    model = build_model(cfg).to(dtype)
    # at p = 113 some of the 6.5M ReLU pre-activations lie within float32 rounding of 0 for any
    # seed; 114's do not flip between the two float32 paths (113's move W_in's gradient by 4e-5)
    _perturb(model, seed=114 if p == 113 else p)
    x, y = full_probe(cfg), labels(cfg)
    ref = model(x)[:, -1]
    fast = FastForward(model, cfg).logits(x[:, :2])
    assert _rel(fast, ref) < tol

    slow_grads = _grads(model, lambda: model(x)[:, -1], y)
    fast_grads = _grads(model, lambda: FastForward(model, cfg).logits(x[:, :2]), y)
    if dtype == torch.float32:
        # the embedding's '=' row sums 12,769 float32 terms with cancellation: compare all
        # gradients as one vector (each float32 path is ~1e-5 from the float64 truth there)
        slow, fast_ = (torch.cat([g.flatten() for g in gs.values()]) for gs in (slow_grads, fast_grads))
        assert _rel(fast_, slow) < tol
    else:
        for name in slow_grads:
            assert _rel(fast_grads[name], slow_grads[name]) < tol, name


DEPTHS = [(layers, ln) for layers in (1, 2, 3) for ln in (None, "LN")]


def _small(layers: int, ln: str | None, p: int = 11, act: str = "relu") -> RunConfig:
    return RunConfig(p=p, num_epochs=2, model=ModelConfig(n_layers=layers, normalization_type=ln, act_fn=act,
                                                          n_heads=4, d_model=32, d_head=8, d_mlp=64))


def _trained_looking(cfg: RunConfig, seed: int) -> torch.nn.Module:
    """The model in float64 with its weights moved off the initialisation (and LayerNorm's
    scales off 1)."""
    model = build_model(cfg).double()
    _perturb(model, seed)
    return model


@pytest.mark.parametrize("layers,ln", DEPTHS, ids=[f"{n}-layer{'-LN' if ln else ''}" for n, ln in DEPTHS])
def test_any_depth_matches_transformer_lens(layers, ln):
    """Logits and every gradient equal the TransformerLens forward's to 1e-12 in float64, at
    1, 2 and 3 layers, LayerNorm on and off (gelu at 2 layers: the other activation)."""
    cfg = _small(layers, ln, act="gelu" if layers == 2 else "relu")
    model = _trained_looking(cfg, seed=layers)
    x, y = full_probe(cfg), labels(cfg)
    fast = FastForward(model, cfg)
    assert _rel(fast.logits(x[:, :2]), model(x)[:, -1]) < 1e-12
    slow_grads = _grads(model, lambda: model(x)[:, -1], y)
    fast_grads = _grads(model, lambda: fast.logits(x[:, :2]), y)
    assert slow_grads.keys() == fast_grads.keys() and len(slow_grads) == len(fast.weights)
    for name in slow_grads:
        assert _rel(fast_grads[name], slow_grads[name]) < 1e-12, name


@pytest.mark.parametrize("layers,ln", [(2, None), (3, "LN")])
def test_activations_at_equals_match_run_with_cache(layers, ln):
    """``run``'s activations are the TransformerLens hooks' values at '=', every layer."""
    cfg = _small(layers, ln)
    model = _trained_looking(cfg, seed=5)
    x = full_probe(cfg)
    logits, acts = FastForward(model, cfg).run(x[:, :2])
    per_layer = ("attn.hook_pattern", "hook_attn_out", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out",
                 "hook_resid_post")
    expected = {"blocks.0.hook_resid_pre", *(f"blocks.{l}.{h}" for l in range(layers) for h in per_layer),
                *(("ln_final.hook_scale",) if ln else ())}
    assert set(acts) == expected
    _, cache = model.run_with_cache(x, names_filter=lambda n: n in expected)
    for name, value in acts.items():
        ref = cache[name][:, :, -1] if name.endswith("hook_pattern") else cache[name][:, -1]
        assert value.shape == ref.shape and _rel(value, ref) < 1e-12, name


@pytest.mark.slow  # torch.compile, six shapes
@pytest.mark.parametrize("layers,ln", DEPTHS, ids=[f"{n}-layer{'-LN' if ln else ''}" for n, ln in DEPTHS])
def test_compiled_objective_at_any_depth_matches_transformer_lens(layers, ln):
    """The compiled training objective, in float64: loss and gradients to 1e-12."""
    from tasks.training import objective

    cfg = _small(layers, ln)
    model = _trained_looking(cfg, seed=7)
    x, y = full_probe(cfg), labels(cfg)
    losses, grads = [], []
    for loss_fn in (lambda: torch.nn.functional.cross_entropy(model(x)[:, -1].double(), y),
                    lambda: objective(model, cfg, compiled=True)(x, y)[0]):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        losses.append(loss.item())
        grads.append({n: q.grad.clone() for n, q in trainable(model).items()})
    assert losses[1] == pytest.approx(losses[0], rel=1e-12)
    for name in grads[0]:
        assert _rel(grads[1][name], grads[0][name]) < 1e-12, name


@pytest.mark.parametrize("p", [13, 59])
def test_probe_fast_path_equals_transformer_lens_hooks(p):
    """The analyses read hook_post, hook_pattern and logits through the fast forward when it
    applies; they equal TransformerLens's own hooks on the same weights."""
    from tasks.analyses.probe import Probe
    from tasks.model import HOOK_PATTERN, HOOK_POST

    cfg = RunConfig(p=p, num_epochs=2)
    model = build_model(cfg)
    _perturb(model, seed=p)
    fast = Probe(cfg, model, (HOOK_POST, HOOK_PATTERN))
    logits, cache = model.run_with_cache(full_probe(cfg), names_filter=lambda n: n in (HOOK_POST, HOOK_PATTERN))
    assert _rel(fast.logits(), logits[:, -1]) < 1e-5
    assert _rel(fast.acts(HOOK_POST), cache[HOOK_POST][:, -1]) < 1e-5
    assert _rel(fast.acts(HOOK_PATTERN), cache[HOOK_PATTERN][:, :, -1]) < 1e-5
    slow = Probe(cfg, model, (HOOK_POST, "blocks.0.mlp.hook_pre"))  # a hook the fast path lacks
    assert _rel(slow.acts(HOOK_POST), cache[HOOK_POST][:, -1]) < 1e-6


def _relu_margin(model: torch.nn.Module, x: torch.Tensor) -> float:
    """The smallest ``|mlp.hook_pre|`` at '=' over the probe, in float64 (on a copy)."""
    hook = "blocks.0.mlp.hook_pre"
    _, cache = copy.deepcopy(model).double().run_with_cache(x, names_filter=[hook])
    return cache[hook][:, -1].abs().min().item()


@pytest.mark.slow  # torch.compile
def test_compiled_objective_matches_transformer_lens():
    """The compiled training objective (what long runs use) agrees with the TransformerLens
    forward in loss and gradients, at weights where the gradient is defined to float32
    resolution: a ReLU pre-activation within float32 rounding of 0 (each float32 path is up to
    ~3e-7 from float64 here) may fall on opposite sides of the kink in the two paths, and then
    W_in's gradients differ by ~2e-3 (2 of 100 random perturbations at p = 31)."""
    from tasks.training import objective

    cfg = RunConfig(p=31, num_epochs=2)
    model = build_model(cfg)
    _perturb(model, seed=45)  # no pre-activation within 1e-6 of the kink (checked below)
    x, y = full_probe(cfg), labels(cfg)
    assert _relu_margin(model, x) > 1e-6, "a pre-activation at the ReLU kink: pick another seed"
    grads, losses = [], []
    for loss_fn in (lambda: torch.nn.functional.cross_entropy(model(x)[:, -1].double(), y),
                    lambda: objective(model, cfg, compiled=True)(x, y)[0]):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        losses.append(loss.item())
        grads.append({n: q.grad.clone() for n, q in trainable(model).items()})
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    for name in grads[0]:
        assert _rel(grads[1][name], grads[0][name]) < 1e-5, name
