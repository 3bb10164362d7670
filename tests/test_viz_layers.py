"""The viewer on deeper models (synthetic stores of 1, 2 and 3 layers, and one written before the
``layer`` dimension, ``tests.layered_stores``): the layer picker drives every per-layer view and
reads only the picked layer; the views over training draw one curve per layer; the "Every
analysis" tab and Compare runs handle the dimension; a dense spectrum reads sensibly."""

import numpy as np
import pytest

from tests.layered_stores import D_MLP, EPOCHS, KEYS, synthetic_run, without_layers
from viz import compare, data, generic, neurons, views
from viz.viewer import App


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    """Runs of 1, 2 and 3 layers, a dense 2-layer one and an old-shaped 1-layer one."""
    root = str(tmp_path_factory.mktemp("layers"))
    for n in (1, 2, 3):
        synthetic_run(root, f"L{n}", n, seed=n)
    synthetic_run(root, "dense", 2, dense=True, seed=4)
    synthetic_run(root, "old", 1, seed=5)
    without_layers(root, "old")
    data.forget()
    return root


def _image(view) -> np.ndarray:
    return view.image if isinstance(view, neurons.NeuronGrid) else np.asarray(view.source.data["image"][0])


def _ys(view) -> list[np.ndarray]:
    return [np.asarray(r.data_source.data["y"]) for r in view.figure.renderers if "y" in r.data_source.data]


def test_the_layer_picker_drives_every_per_layer_view(root):
    """A 2-layer run shows the picker (last layer first); picking layer 0 refills the neuron,
    attention and W_L views with layer 0's slice in place, re-sorts the neurons by layer 0's
    frequencies, redraws the per-layer curves, names the layer in each title and puts it into
    the address; the views of the whole model are untouched."""
    states = []
    view = App(root, run="L2").view
    view.on_state = lambda **s: states.append(s)
    assert view.layers.widget.visible and view.layers.value == 1 and view.layers.widget in view.controls()
    for i in range(len(views.TABS) - 1):
        view.tabs.active = i  # every tab's views built
    last = EPOCHS[-1]
    figures = {name: v.figure for name, v in view.views.items()}
    loss = np.asarray(view.views["loss"].figure.renderers[0].data_source.data["y"]).copy()
    view.tabs.active = 0
    view.layers.widget.value = 0
    assert states[-1] == {"layer": 0}
    for name, layer_of in (("neuron_frequencies", "neuron_freq_fraction"), ("wl_spectrum", "wl_freq_norm")):
        view.tabs.active = views.TABS.index(views.BY_NAME[name].tab)  # a hidden tab's views: refilled when shown
        v = view.views[name]
        stored = data.layer_slice(root, "L2", layer_of, last, 0)[v.order]
        if name == "wl_spectrum":
            stored = stored / stored.max(axis=1, keepdims=True)
        np.testing.assert_allclose(_image(v), stored, rtol=1e-6, err_msg=name)
        assert v.figure.title.text.endswith("· layer 0"), name
    np.testing.assert_array_equal(view.order, neurons.order(root, "L2", last, neurons.ORDERS[0], 0))
    frac = data.layer_slice(root, "L2", "neuron_freq_fraction", last, 0)
    assert (np.diff(frac[view.order].argmax(axis=1)) >= 0).all()  # layer 0's blocks
    heat = view.views["neuron_heatmap"]
    np.testing.assert_allclose(_image(heat), data.layer_slice(root, "L2", "neuron_activations", last, 0,
                                                              view.neuron.value), rtol=1e-3)
    grid = view.views["neuron_grid"]
    assert grid.neurons == data.top_by_variance(root, "L2", last, len(grid.neurons), 0)
    mean = data.layer_slice(root, "L2", "attention_mean", last, 0)
    np.testing.assert_allclose(view.views["attention"].source.data["a"], mean[:, 0], rtol=1e-6)
    view.tabs.active = views.TABS.index(views.PROGRESS)  # a hidden curve: redrawn when shown
    assert view.views["specialised_share"].figure.title.text.endswith("· layer 0")
    assert "of layer 0" in view.key_text.object
    assert all(view.views[name].figure is fig for name, fig in figures.items())  # refilled in place
    np.testing.assert_array_equal(view.views["loss"].figure.renderers[0].data_source.data["y"], loss)
    assert "layer" not in view.views["class_accuracy"].figure.title.text


def test_a_step_reads_only_the_picked_layer(root, monkeypatch):
    """Every read of a per-layer variable during a step asks for the picked layer's slice."""
    view = App(root, run="L3", layer=1).view
    assert view.layers.value == 1
    view.tabs.active = 2
    view.tabs.active = 0
    st = data.store(root, "L3")
    reads = []
    real = st.read
    monkeypatch.setattr(st, "read", lambda name, epoch=None, *index: reads.append((name, index)) or real(name, epoch, *index))
    for cached in (data.epoch_slice, data.neuron_maps):
        cached.cache_clear()
    view.epoch.value = EPOCHS[0]
    view.tabs.active = 2
    layered = [(name, index) for name, index in reads if data.layered(root, "L3", name)]
    assert {"neuron_activations", "neuron_freq_fraction", "attention_mean", "wl_freq_norm"} <= {n for n, _ in layered}
    assert all(index[:1] == (1,) for _, index in layered), layered


def test_views_over_training_draw_one_curve_per_layer(root):
    """Residual frequency shares (each layer after attention and after the MLP, summed over the
    key frequencies), direct logit attribution (embedding, attention l, MLP l, their sum) and
    the logit lens (test split per layer), each from the store, with the epoch marked."""
    view = App(root, run="L3").view
    view.tabs.active = views.TABS.index(views.LAYERS)
    keys = np.isin(data.coord(root, "L3", "freq"), KEYS)
    epochs, share = data.measure(root, "L3", "resid_freq_share")
    ys = _ys(view.views["residual_shares"])
    assert len(ys) == 3 * 2
    np.testing.assert_allclose(ys[2 * 2 + 1], share[:, 2, 1][:, keys].sum(axis=1), rtol=1e-6)  # layer 2 after the MLP
    ys = _ys(view.views["logit_attribution"])
    assert len(ys) == 1 + 3 * 2 + 1
    np.testing.assert_allclose(ys[0], data.measure(root, "L3", "logit_attribution_embed")[1])
    np.testing.assert_allclose(ys[1 + 2], data.measure(root, "L3", "logit_attribution")[1][:, 1, 0])  # attention 1
    np.testing.assert_allclose(ys[-1], data.measure(root, "L3", "correct_logit")[1])
    test = list(data.coord(root, "L3", "split")).index("test")
    for name in ("logit_lens_accuracy", "logit_lens_loss"):
        ys = _ys(view.views[name])
        assert len(ys) == 3, name
        np.testing.assert_allclose(ys[2], data.measure(root, "L3", name)[1][:, 2, test], err_msg=name)
    view.epoch.value = EPOCHS[1]
    assert all(view.views[n].marker.location == EPOCHS[1] for n in ("residual_shares", "logit_lens_loss"))
    one = App(root, run="L1").view.view("logit_lens_accuracy")
    one.show(EPOCHS[0])
    assert len(_ys(one)) == 1  # a 1-layer run: one curve


def test_every_analysis_tab_shows_the_picked_layer(root):
    """A variable with a layer dimension and more after it is drawn at the picked layer and
    follows the picker; a lone (epoch, layer) is one curve per layer."""
    view = App(root, run="L2").view
    view.tabs.active = views.TABS.index(views.EVERY)
    explore = view.explore
    explore.select.value = "resid_freq_share"  # (epoch, layer, site, freq): an image at the layer
    np.testing.assert_allclose(_image(explore.view), data.layer_slice(root, "L2", "resid_freq_share", EPOCHS[-1], 1),
                               rtol=1e-6)
    view.layers.widget.value = 0
    np.testing.assert_allclose(_image(explore.view), data.layer_slice(root, "L2", "resid_freq_share", EPOCHS[-1], 0),
                               rtol=1e-6)
    assert explore.view.figure.title.text.endswith("· layer 0")
    explore.select.value = "neuron_activations"  # (epoch, layer, neuron, a, b): one neuron at the layer
    np.testing.assert_allclose(_image(explore.view), data.layer_slice(root, "L2", "neuron_activations", EPOCHS[-1], 0, 0),
                               rtol=1e-3)
    explore.select.value = "logit_lens_loss"  # (epoch, layer, split): a curve per split at the layer
    split = _ys(explore.view)
    np.testing.assert_allclose(split[0], data.measure(root, "L2", "logit_lens_loss", 0)[1][:, 0])
    view.layers.widget.value = 1
    np.testing.assert_allclose(_ys(explore.view)[0], data.measure(root, "L2", "logit_lens_loss", 1)[1][:, 0])
    explore.select.value = "gini_wl"  # (epoch, layer): a curve per layer
    assert len(_ys(explore.view)) == 2 and generic.labels(root, "L2", "layer") == ["layer 0", "layer 1"]


def test_an_old_shaped_store_opens_unchanged(root):
    """A store written before the layer dimension: no picker, nothing named by layer, the
    per-layer views show its arrays as they are (layer 0), the participation ratios over W_E,
    W_in, W_out; the Layers tab names the analyses it lacks."""
    app = App(root, run="old")
    view = app.view
    assert not view.layers.widget.visible and view.layers.value == 0
    for i in range(len(views.TABS) - 1):
        view.tabs.active = i
    assert not any("layer" in v.figure.title.text for v in view.views.values())
    nf = view.views["neuron_frequencies"]
    np.testing.assert_allclose(_image(nf), data.epoch_slice(root, "old", "neuron_freq_fraction", EPOCHS[-1])[nf.order])
    legend = [item.label["value"] for leg in view.views["participation"].figure.legend for item in leg.items]
    assert legend == ["W_E", "W_in", "W_out"]
    assert {"residual_shares", "logit_attribution", "logit_lens_loss"}.isdisjoint(view.views)
    layers_tab = view.tabs[views.TABS.index(views.LAYERS)]
    assert sum("not analysed" in md.object for md in layers_tab.select(type(view.info))) == 4


def test_compare_runs_of_one_two_and_three_layers(root):
    """A per-layer measure is offered at every layer of the deepest run and at each run's last
    layer: at the last layer every run has a curve (its own last), at layer 2 only the 3-layer
    run (the title names the others); an old-shaped run is layer 0."""
    runs = ["L1", "L2", "L3", "old"]
    found = compare.measures(root, runs)
    assert {"logit_lens_accuracy [test] · last layer", "logit_lens_accuracy [test] · layer 2",
            "gini_wl · last layer", "gini_wl · layer 0", "participation_ratio [W_in] · layer 0"} <= set(found)
    assert "gini_wl" not in found and "participation_ratio [W_in]" not in found  # the old run's: layer 0
    test = list(data.coord(root, "L3", "split")).index("test")
    last = compare.overlay(root, runs, "x", "logit_lens_accuracy", "test", False, compare.LAST)
    assert len(last) == 3 and "not stored in 1" in last.opts.get().kwargs["title"]  # the old run lacks the lens
    for curve, run_id in zip(last, ("L1", "L2", "L3")):
        n = data.n_layers(root, run_id)
        np.testing.assert_allclose(curve.dimension_values(1), data.measure(root, run_id, "logit_lens_accuracy")[1][:, n - 1, test])
    deep = compare.overlay(root, runs, "x", "gini_wl", None, False, 2)
    assert [c.label for c in deep] == ["L3"] and "not stored in 3" in deep.opts.get().kwargs["title"]
    first = compare.overlay(root, runs, "x", "gini_wl", None, False, 0)
    assert len(first) == 4  # the old run's gini_wl is its layer 0
    np.testing.assert_allclose(list(first)[3].dimension_values(1), data.measure(root, "old", "gini_wl")[1])
    w_in = compare.overlay(root, runs, "x", "participation_ratio", "W_in", False, 0)  # by label: W_in in each run
    np.testing.assert_allclose(list(w_in)[3].dimension_values(1), data.measure(root, "old", "participation_ratio")[1][:, 1])
    np.testing.assert_allclose(list(w_in)[0].dimension_values(1), data.measure(root, "L1", "participation_ratio", 0)[1][:, 4])
    page = compare.Compare(root, "L2")
    page.runs.value = runs
    page.measure.value = "gini_wl · last layer"
    assert len(page.plot.object.renderers) == 4


def test_a_dense_spectrum_reads_sensibly(root):
    """Every neuron spreads its variance over all frequencies (~1/6 each): the neuron ×
    frequency colours run to the largest fraction (not to 1, which would leave the image
    near-white); no neuron counts as specialised and no cluster is offered; the key frequency
    text gives the median neuron's strongest fraction beside the even spread; the attention
    hover gives the strongest frequency's fraction."""
    view = App(root, run="dense").view
    nf = view.views["neuron_frequencies"]
    frac = data.layer_slice(root, "dense", "neuron_freq_fraction", EPOCHS[-1], 1)
    assert nf.mapper.high == pytest.approx(frac.max()) and frac.max() < 0.5
    assert sorted(view.order) == list(range(D_MLP))
    assert list(view.grid_choice.options.values()) == ["top"]
    view.tabs.active = 1
    assert not _ys(view.views["specialised_share"])[0].any()
    median = np.median(frac.max(axis=1))
    assert f"holds {median:.2f} of its variance (spread evenly: {1 / 6:.2f})" in view.key_text.object
    assert view.threshold.start <= 0.2  # a threshold for a spread-out spectrum is reachable
    view.tabs.active = 2
    att = view.views["attention"].source.data
    heads = data.layer_slice(root, "dense", "head_freq_fraction", EPOCHS[-1], 1)
    np.testing.assert_allclose(att["kf"], heads.max(axis=1), rtol=1e-6)
    sparse = App(root, run="L2").view.views["neuron_frequencies"]
    assert sparse.mapper.high == pytest.approx(data.layer_slice(root, "L2", "neuron_freq_fraction", EPOCHS[-1], 1).max())
