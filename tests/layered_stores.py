"""Synthetic stores of 1, 2 and 3 layers for the viewer's tests: every array the analysis table
declares (``tasks.analyses.variables``), filled with seeded made-up values in which each layer
differs, so that a test can tell which layer a view shows; and the same store in the shape
written before the ``layer`` dimension existed. Small (p = 13: 6 frequencies; 8 neurons, 2
heads, 3 checkpoints), so a page builds in about a second."""

from __future__ import annotations

import numpy as np

P, D_MLP, N_HEADS, EPOCHS, NUM_EPOCHS = 13, 8, 2, [0, 5, 9], 10
KEYS = [2, 5]


def synthetic_run(root: str, run_id: str, n_layers: int, dense: bool = False, seed: int = 0) -> None:
    """A store as the analyses write one for a model of ``n_layers`` layers. Layer l's neuron n
    puts 0.9 of its variance in frequency index (n + l) mod 6 (``dense``: every neuron spreads
    it over all six, each ~1/6, Dirichlet(50)); other per-layer arrays are uniform noise plus
    10·l, so each layer's values are apart."""
    from store.run_store import create_run
    from tasks.analyses import BY_NAME, variables

    config = {"p": P, "task": "add", "model": {"d_mlp": D_MLP, "n_heads": N_HEADS, "n_layers": n_layers},
              "lr": 1e-3, "weight_decay": 1.0, "frac_train": 0.3, "seed": seed, "data_seed": 2,
              "num_epochs": NUM_EPOCHS, "checkpoint_epochs": EPOCHS}
    declared = [v for v in variables() if v.dims[:1] == ("epoch",) and not v.name.endswith("_done")]
    st = create_run(root, run_id, config, EPOCHS, {"p": P, "d_mlp": D_MLP, "n_heads": N_HEADS,
                                                   "num_epochs": NUM_EPOCHS, "n_layers": n_layers}, tuple(variables()))
    st.write_key_frequencies(KEYS, rule="synthetic", threshold=0.5, from_epoch=EPOCHS[-1])
    rng = np.random.default_rng(seed)
    n_freq = P // 2
    for e, epoch in enumerate(EPOCHS):
        for var in declared:
            shape = st.array(var.name).shape[1:]
            if var.name == "neuron_freq_fraction":
                values = fractions(n_layers, dense, rng, e)
            elif var.name == "attention_mean":
                values = rng.random(shape)
                values /= values.sum(axis=-1, keepdims=True)
            else:
                values = rng.random(shape)
                if var.dims[1:2] == ("layer",):
                    values += 10 * np.arange(n_layers).reshape(-1, *[1] * (len(shape) - 1))
            st.write_epoch(var.name, epoch, values.astype(var.dtype))
        for name in {v.attrs["analysis"] for v in declared}:
            st.mark_done(name, epoch, BY_NAME[name].version(KEYS))
    series = {k: np.linspace(1, 0.01, NUM_EPOCHS) for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
    st.write_series(series, 0, NUM_EPOCHS)
    assert n_freq == st.sizes()["freq"]


def fractions(n_layers: int, dense: bool, rng, e: int) -> np.ndarray:
    """(layer, neuron, freq) variance fractions (see ``synthetic_run``); a little stronger at
    each later checkpoint ``e``."""
    n_freq = P // 2
    if dense:
        return 0.95 * rng.dirichlet(np.full(n_freq, 50.0), size=(n_layers, D_MLP))
    out = np.full((n_layers, D_MLP, n_freq), 0.1 / (n_freq - 1))
    for layer in range(n_layers):
        for n in range(D_MLP):
            out[layer, n, (n + layer) % n_freq] = 0.8 + 0.05 * e
    return out


def without_layers(root: str, run_id: str) -> None:
    """Turn a 1-layer synthetic store into one written before the ``layer`` dimension: each
    per-layer array without it (its layer 0), the participation ratios over W_E, W_in, W_out
    (``matrix``), no depth in the config, and none of the analyses that came with layers."""
    from store.run_store import open_run

    st = open_run(root, run_id)
    g = st.group
    newer = ("resid_freq_share", "logit_attribution", "logit_attribution_embed", "correct_logit", "logit_lens_loss",
             "logit_lens_accuracy", "logit_lens_restricted_loss", "logit_lens_excluded_loss",
             "participation_ratio_embed", "residual_frequencies_done", "logit_attribution_done", "logit_lens_done",
             "logit_lens_progress_done", "layer", "layer_label", "site", "layer_matrix")
    for name in newer:
        del g[name]
    for name in list(g.array_keys()):
        arr = g[name]
        dims = tuple(arr.metadata.dimension_names or ())
        if dims[1:2] != ("layer",):
            continue
        values, attrs = arr[:][:, 0], dict(arr.attrs)
        if name == "participation_ratio":
            values, dims = np.random.default_rng(1).random((len(EPOCHS), 3)), ("epoch", "layer", "matrix")
        attrs.pop("coordinates", None)
        del g[name]
        g.create_array(name, shape=values.shape, dtype=values.dtype, dimension_names=dims[:1] + dims[2:],
                       fill_value=np.nan if values.dtype.kind == "f" else 0, attributes=attrs)[:] = values
    g.create_array("matrix", shape=(3,), dtype=str, dimension_names=("matrix",), fill_value=None)[:] = \
        np.asarray(["W_E", "W_in", "W_out"])
    sizes = {k: v for k, v in g.attrs["dim_sizes"].items() if k not in ("layer", "site", "layer_matrix")}
    config = dict(g.attrs["config"])
    config["model"] = {k: v for k, v in config["model"].items() if k != "n_layers"}
    g.attrs.update({"dim_sizes": {**sizes, "matrix": 3}, "config": config})
    if "dims" in g.attrs:
        g.attrs["dims"] = {k: v for k, v in g.attrs["dims"].items() if k != "n_layers"}
