"""Pins the TransformerLens names and shapes the analyses rely on: an upgrade that renames
them fails here, loudly."""

from tasks.config import RunConfig
from tasks.model import HOOK_PATTERN, HOOK_POST, build_model, trainable, weights
from tasks.data import full_probe


def test_weight_names_shapes_and_parameter_count():
    cfg = RunConfig()
    model = build_model(cfg)
    shapes = {k: tuple(v.shape) for k, v in weights(model).items()}
    assert shapes == {
        "W_E": (114, 128), "W_pos": (3, 128), "W_Q": (4, 128, 32), "W_K": (4, 128, 32),
        "W_V": (4, 128, 32), "W_O": (4, 32, 128), "W_in": (128, 512), "W_out": (512, 128),
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
