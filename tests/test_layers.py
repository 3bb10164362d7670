"""Per-layer analyses: the hooks each layer's analyses read equal TransformerLens's own, the
direct logit attribution sums to the logit, the residual frequency share of a stream with a
known frequency content, and the logit lens at the last layer is the model's own output."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tasks.analyses import ANALYSES, BY_NAME, layers
from tasks.analyses.probe import Probe
from tasks.analyses.progress import accuracy, progress_measures
from tasks.config import ModelConfig, RunConfig
from tasks.model import ATTN_PATTERN, MLP_POST, RESID_MID, RESID_POST, build_model, hook_name
from tasks import problems

P = 7
B = problems.get("add").basis(P)


def _probe(n_layers: int, ln: bool, hooks=(MLP_POST, ATTN_PATTERN, RESID_MID, RESID_POST)) -> Probe:
    """A trained-looking model is not needed: a seeded random one of small widths."""
    model = ModelConfig(n_layers=n_layers, n_heads=2, d_model=32, d_head=8, d_mlp=24,
                        normalization_type="LN" if ln else None)
    cfg = RunConfig(p=P, num_epochs=2, model=model, seed=n_layers)
    return Probe(cfg, build_model(cfg), tuple(hook_name(h, layer) for h in hooks for layer in range(n_layers)))


@pytest.mark.parametrize("n_layers, ln", [(2, False), (3, True)])
def test_every_layers_hooks_equal_transformer_lens(n_layers, ln):
    probe = _probe(n_layers, ln)
    names = [hook_name(h, layer) for h in (MLP_POST, ATTN_PATTERN, RESID_MID, RESID_POST) for layer in range(n_layers)]
    with torch.no_grad():
        logits, cache = probe.model.run_with_cache(probe.inputs, names_filter=lambda n: n in names)
    for name in names:
        expected = cache[name][:, :, -1] if name.endswith("hook_pattern") else cache[name][:, -1]
        torch.testing.assert_close(probe.acts(name), expected, atol=1e-5, rtol=1e-5, msg=name)
    torch.testing.assert_close(probe.logits(), logits[:, -1], atol=1e-5, rtol=1e-5)
    maps = BY_NAME["neuron_activations"].fn(probe)["neuron_activations"]  # (layer, neuron, a, b)
    last = cache[hook_name(MLP_POST, n_layers - 1)][:, -1]
    np.testing.assert_allclose(maps[-1], probe.on_grid(last).half().numpy(), atol=1e-2)


@pytest.mark.parametrize("n_layers, ln", [(1, False), (2, True), (3, False)])
def test_direct_logit_attribution_sums_to_the_centred_correct_logit(n_layers, ln):
    probe = _probe(n_layers, ln)
    logits = probe.logits().double()
    centred = (logits - logits.mean(1, keepdim=True)).gather(1, probe.labels[:, None])[:, 0]
    resid = layers.streams(probe)
    w = probe.weights
    parts = layers.direct_attribution(layers.writes(probe, resid), probe.labels, w["W_U"], probe.ln_scale(resid[-1, -1]),
                                      w.get("ln_final.w"))
    assert parts.shape == (1 + 2 * n_layers, P * P)
    torch.testing.assert_close(parts.sum(0), centred, atol=1e-4, rtol=1e-4)
    out = layers.logit_attribution(probe)
    assert out["logit_attribution"].shape == (n_layers, 2)
    assert out["correct_logit"] == pytest.approx(centred.mean().item(), abs=1e-5)
    assert out["logit_attribution"].sum() + out["logit_attribution_embed"] == pytest.approx(out["correct_logit"], abs=1e-9)


def test_planted_parts_are_attributed_to_their_layer():
    """Parts written along the correct answer's unembedding direction (minus the mean) give
    exactly their weight; a part orthogonal to every class direction gives zero."""
    torch.manual_seed(0)
    W_U = torch.randn(10, P, dtype=torch.float64)
    labels = torch.arange(P * P) % P
    direction = (W_U - W_U.mean(1, keepdim=True))[:, labels].T  # (rows, d_model)
    norm2 = direction.pow(2).sum(-1, keepdim=True)
    ones = torch.ones(P * P, 1, dtype=torch.float64)
    null = torch.linalg.svd(W_U - W_U.mean(1, keepdim=True)).U[:, P - 1]  # the centred columns span rank P - 1
    parts = torch.stack([3 * direction / norm2, -direction / norm2, null.expand(P * P, 10)])
    out = layers.direct_attribution(parts, labels, W_U, ones, None)
    torch.testing.assert_close(out, torch.tensor([3.0, -1.0, 0.0], dtype=torch.float64)[:, None].expand(3, P * P))


def _grid(f) -> torch.Tensor:
    a = torch.arange(P, dtype=torch.float64)[:, None]
    b = torch.arange(P, dtype=torch.float64)[None, :]
    return f(a, b) + torch.zeros(P, P, dtype=torch.float64)


def test_residual_frequency_share_of_a_planted_stream():
    """Coordinates cos(w_3(a+b)) (energy p²/2), 2 sin(w_3 a) (2p²), cos(w_5 b) (p²/2, i.e.
    frequency 2 after folding: 5 = 7 - 2) and cos(w_1 a) cos(w_2 b) (p²/4, two frequencies, so
    in no block): shares 2.5/3.25 at k = 3 and 0.5/3.25 at k = 2, whatever basis the stream's
    coordinates are written in."""
    w = lambda k: 2 * math.pi * k / P  # noqa: E731
    maps = torch.stack([
        _grid(lambda a, b: torch.cos(w(3) * (a + b))), _grid(lambda a, b: 2 * torch.sin(w(3) * a)),
        _grid(lambda a, b: torch.cos(w(5) * b)), _grid(lambda a, b: torch.cos(w(1) * a) * torch.cos(w(2) * b)),
        _grid(lambda a, b: 5.0 + 0 * a),  # constant: no variance
    ]).float()
    share = layers.residual_freq_share(maps, B)
    np.testing.assert_allclose(share, [0, 0.5 / 3.25, 2.5 / 3.25], atol=1e-5)
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(0))).Q
    rotated = torch.einsum("ed,dab->eab", rotation, maps)
    np.testing.assert_allclose(layers.residual_freq_share(rotated, B), share, atol=1e-5)
    np.testing.assert_array_equal(layers.residual_freq_share(torch.ones(3, P, P), B), 0)


def test_a_dense_stream_spreads_evenly():
    """No sparsity assumed: iid noise puts about 8 of the p² - 1 centred components' energy in
    each frequency's block (4 rows x 2 + the 3 x 3 block's cross terms: 8 entries)."""
    noise = torch.randn(400, P, P, generator=torch.Generator().manual_seed(1))
    share = layers.residual_freq_share(noise, B)
    assert np.isfinite(share).all() and share.sum() <= 1
    np.testing.assert_allclose(share, 8 / (P * P - 1), rtol=0.1)


def test_logit_lens_at_the_last_layer_is_the_models_output():
    probe = _probe(2, True)
    lens = layers.logit_lens(probe)
    assert lens["logit_lens_loss"].shape == (2, 3) and lens["logit_lens_accuracy"].shape == (2, 3)
    logits = probe.logits().double()
    splits = (probe.train_idx, probe.test_idx, torch.arange(P * P))
    np.testing.assert_allclose(lens["logit_lens_loss"][-1],
                               [F.cross_entropy(logits[r], probe.labels[r]).item() for r in splits], rtol=1e-5)
    np.testing.assert_array_equal(lens["logit_lens_accuracy"][-1], accuracy(probe)["checkpoint_accuracy"])
    lens_progress = layers.logit_lens_progress(probe, [1, 3])
    final = progress_measures(probe, [1, 3])
    np.testing.assert_allclose(lens_progress["logit_lens_restricted_loss"][-1], final["restricted_loss"], rtol=1e-5)
    np.testing.assert_allclose(lens_progress["logit_lens_excluded_loss"][-1], final["excluded_loss"], rtol=1e-5)


def test_every_analysis_runs_at_three_layers_with_layer_first():
    """The whole table on a 3-layer model: each variable with a layer dimension gets one entry
    per layer, all finite (the probe's one forward serves every analysis)."""
    probe = _probe(3, False, hooks=tuple(h for a in ANALYSES for h in a.hooks))
    for a in ANALYSES:
        if a.optional:
            continue
        out = a.fn(probe, [1, 2]) if a.needs_keys else a.fn(probe)
        for var in a.outputs:
            value = np.asarray(out[var.name], dtype=np.float64)
            assert value.ndim == len(var.dims) - 1, var.name
            if "layer" in var.dims:
                assert var.dims[1] == "layer" and value.shape[0] == 3, var.name
            assert np.isfinite(value).all() or var.name == "excluded_loss_by_freq", var.name


@pytest.mark.slow  # trains a model (~10 s)
def test_a_two_layer_run_trains_and_is_analysed_end_to_end(tmp_path):
    """The smoke preset at 2 layers with LayerNorm (p = 13, narrow): every analysis at every
    checkpoint, each per-layer variable two layers deep, the attributions summing to the
    centred correct logit, the logit lens's last layer the checkpoint's own accuracy, and the
    report's table of where each key frequency first appears."""
    from store.run_store import open_run
    from tasks.config import preset
    from tasks.runs import analyze_epoch, choose_key_frequencies, prepare_run, train_run
    from viz import data, report

    root = str(tmp_path)
    cfg = prepare_run(root, preset("smoke", p=13, n_layers=2, normalization_type="LN", d_model=64, d_mlp=64))
    epochs = []
    train_run(root, cfg, device="cpu", on_checkpoint=epochs.append)
    keys = choose_key_frequencies(root, cfg.run_id)
    for epoch in epochs:
        analyze_epoch(root, cfg.run_id, epoch)
    st = open_run(root, cfg.run_id, mode="r")
    assert all(st.done_mask(name).all() for name in st.analyses()) and st.sizes()["layer"] == 2
    final = epochs[-1]
    assert st.read("neuron_activations", final).shape == (2, 64, 13, 13)
    assert st.read("resid_freq_share", final).shape == (2, 2, 6)
    parts = st.read("logit_attribution", final).sum() + st.read("logit_attribution_embed", final)
    assert parts == pytest.approx(st.read("correct_logit", final), abs=1e-6)
    np.testing.assert_array_equal(st.read("logit_lens_accuracy", final)[-1], st.read("checkpoint_accuracy", final))
    assert np.isfinite(st.read("logit_lens_restricted_loss", final)).all()
    data.forget()
    md = report.markdown(root, cfg.run_id)
    assert f"Key frequencies: {keys}" in md and "| k | first appears | after each layer |" in md
    data.forget()
