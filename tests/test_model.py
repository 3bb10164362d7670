"""Pins the TransformerLens names and shapes the analyses rely on: an upgrade that renames
them fails here, loudly."""

import math

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

from tasks.config import ConfigError, ModelConfig, RunConfig
from tasks.model import HOOK_PATTERN, HOOK_POST, WEIGHT_NAMES, build_model, tl_config, trainable, weights
from tasks.data import full_probe


def test_weight_names_shapes_and_parameter_count():
    cfg = RunConfig()
    model = build_model(cfg)
    shapes = {k: tuple(v.shape) for k, v in weights(model).items()}
    assert shapes == {  # block weights stacked over layers (one here)
        "W_E": (114, 128), "W_pos": (3, 128), "W_Q": (1, 4, 128, 32), "W_K": (1, 4, 128, 32),
        "W_V": (1, 4, 128, 32), "W_O": (1, 4, 32, 128), "W_in": (1, 128, 512), "W_out": (1, 512, 128),
        "W_U": (128, 113),
    }
    assert sum(p.numel() for p in trainable(model).values()) == 226_048


def test_biases_frozen_at_zero():
    model = build_model(RunConfig(p=31, num_epochs=2))
    biases = [(n, p) for n, p in model.named_parameters() if n.endswith(".bias")]
    assert biases
    assert all(not p.requires_grad and p.abs().max() == 0 for _, p in biases)


def test_seeded_initialisation_is_reproducible():
    a = weights(build_model(RunConfig(p=31, num_epochs=2)))["W_E"]
    b = weights(build_model(RunConfig(p=31, num_epochs=2)))["W_E"]
    c = weights(build_model(RunConfig(p=31, num_epochs=2, seed=1)))["W_E"]
    assert (a == b).all() and not (a == c).all()


def test_hook_names_and_shapes():
    p = 7
    model = build_model(RunConfig(p=p, num_epochs=2))
    _, cache = model.run_with_cache(full_probe(RunConfig(p=p, num_epochs=2)), names_filter=lambda n: n in (HOOK_POST, HOOK_PATTERN, "blocks.0.hook_resid_mid"))
    assert tuple(cache[HOOK_POST].shape) == (p * p, 3, 512)
    assert tuple(cache[HOOK_PATTERN].shape) == (p * p, 4, 3, 3)
    assert tuple(cache["blocks.0.hook_resid_mid"].shape) == (p * p, 3, 128)
    assert (cache[HOOK_POST] >= 0).all()


def test_deeper_models_have_a_block_per_layer():
    """``n_layers`` blocks, each with its own hooks and weights (stacked on a layer axis); with
    LayerNorm, three LayerNorm scales per block and the final LayerNorm's hook_scale."""
    p, layers = 7, 3
    cfg = RunConfig(p=p, num_epochs=2, model=ModelConfig(n_layers=layers, normalization_type="LN"))
    model = build_model(cfg)
    hooks = [f"blocks.{l}.mlp.hook_post" for l in range(layers)] + ["ln_final.hook_scale"]
    _, cache = model.run_with_cache(full_probe(cfg), names_filter=lambda n: n in hooks)
    assert all(tuple(cache[h].shape) == (p * p, 3, 512) for h in hooks[:-1])
    assert tuple(cache["ln_final.hook_scale"].shape) == (p * p, 3, 1)
    assert tuple(weights(model)["W_in"].shape) == (layers, 128, 512)
    one_layer = 226_048 - 114 * 128 - 3 * 128 - 128 * 113  # a block's trainable weights, without LN
    embed = (p + 1) * 128 + 3 * 128 + 128 * p
    assert sum(q.numel() for q in trainable(model).values()) == embed + layers * (one_layer + 2 * 128) + 128


def test_native_init_is_transformerlens_gpt2_init_seeded_by_the_run_seed():
    """``native``: TransformerLens 4's own init of a freshly booted model (the weights every run
    before the init knob started from), W_O and W_out at std 0.8/sqrt(d_model)/sqrt(2)."""
    cfg = RunConfig(p=31, num_epochs=2, model=ModelConfig(init="native"))
    ours = weights(build_model(cfg))
    theirs = TransformerBridge.boot_native(tl_config(cfg))
    reference = {n: getattr(theirs, n).detach() for n in WEIGHT_NAMES}
    for name, w in ours.items():
        ref = reference[name][0] if reference[name].shape != w.shape else reference[name]
        assert torch.equal(w, ref), name
    std = 0.8 / math.sqrt(128)
    assert abs(ours["W_O"].std() - std / math.sqrt(2)) < 0.002 and abs(ours["W_E"].std() - std) < 0.003


def test_legacy_init_is_native_with_the_output_projections_unscaled():
    """``legacy`` (the default): every weight N(0, 0.64/d_model); all but W_O and W_out
    bit-identical to ``native``'s, those two sqrt(2 n_layers) times native's; a function of the
    seed alone."""
    cfg = RunConfig(p=31, num_epochs=2)
    assert cfg.model.init == "legacy"
    legacy, again = weights(build_model(cfg)), weights(build_model(cfg))
    native = weights(build_model(cfg.replace(**{"model.init": "native"})))
    other_seed = weights(build_model(cfg.replace(seed=1)))
    for name in WEIGHT_NAMES:
        assert torch.equal(legacy[name], again[name]) and not torch.equal(legacy[name], other_seed[name])
        if name in ("W_O", "W_out"):
            assert torch.allclose(legacy[name], native[name] * math.sqrt(2), rtol=1e-6, atol=0)
            assert abs(legacy[name].std() - 0.8 / math.sqrt(128)) < 0.002
        else:
            assert torch.equal(legacy[name], native[name]), name


@pytest.mark.parametrize("init", ["xavier_normal", "kaiming_uniform"])
def test_other_transformerlens_schemes_are_seeded(init):
    cfg = RunConfig(p=31, num_epochs=2, model=ModelConfig(init=init))
    a, b = weights(build_model(cfg)), weights(build_model(cfg))
    legacy = weights(build_model(cfg.replace(**{"model.init": "legacy"})))
    assert all(torch.equal(a[n], b[n]) for n in WEIGHT_NAMES)
    assert not torch.equal(a["W_in"], legacy["W_in"])
    assert all(not p.requires_grad for n, p in build_model(cfg).named_parameters() if n.endswith(".bias"))


def test_an_unknown_init_is_refused():
    with pytest.raises(ConfigError, match="init must be one of legacy, native"):
        RunConfig(model=ModelConfig(init="orthogonal"))


def test_nanda_init_is_the_original_codes_scale_seeded():
    """``nanda``: every weight randn / sqrt(d_model) (std 0.088 at 128), W_U randn / sqrt(d_vocab),
    biases zero and frozen, LayerNorm scales left at one; a function of the seed alone."""
    cfg = RunConfig(model=ModelConfig(init="nanda"))
    w, again = weights(build_model(cfg)), weights(build_model(cfg))
    other = weights(build_model(cfg.replace(seed=1)))
    for name in WEIGHT_NAMES:
        assert torch.equal(w[name], again[name]) and not torch.equal(w[name], other[name])
        std = 1 / math.sqrt(114 if name == "W_U" else 128)
        assert abs(w[name].std() - std) < 0.1 * std, name
    ln = build_model(cfg.replace(**{"model.normalization_type": "LN"}))
    scales = [p for n, p in ln.named_parameters() if p.ndim == 1 and not n.endswith(".bias")]
    assert scales and all(torch.equal(p, torch.ones_like(p)) for p in scales)
