"""The viewer without a browser: build the app on a smoke run, drive the widgets, check the
data each view would draw."""

import numpy as np

from viz import data
from viz.app import App


def _current(dmap):
    return dmap[()]


def test_slider_drives_every_per_epoch_view(smoke_run):
    root, cfg = smoke_run
    app = App(root)
    view = app.view
    assert app.run_select.value == cfg.run_id
    assert view.epoch.options == list(cfg.checkpoint_epochs)
    assert view.epoch.value == cfg.checkpoint_epochs[-1]

    def snapshot():
        bars = _current(view.views["embedding_spectrum"])
        heat = _current(view.views["neuron_heatmap"])
        grid = _current(view.views["neuron_grid"])
        freq = _current(view.views["neuron_frequencies"])
        return (bars.dimension_values("norm"), heat.dimension_values("activation"),
                grid.dimension_values("activation"), freq.dimension_values("fraction"))

    late = snapshot()
    view.epoch.value = cfg.checkpoint_epochs[1]
    early = snapshot()
    for a, b in zip(late, early):
        assert not np.array_equal(a, b, equal_nan=True)
    assert _current(view.views["embedding_spectrum"]).dimension_values("component")[0] == "const"


def test_neuron_heatmap_is_oriented_and_matches_the_store(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    epoch = cfg.checkpoint_epochs[-1]
    view.neuron.value = 3
    img = _current(view.views["neuron_heatmap"])
    stored = data.epoch_slice(root, cfg.run_id, "neuron_activations", epoch, 3).astype(np.float32)
    # rows are a, columns b, a = 0 first (drawn at the bottom): no flipped rows
    np.testing.assert_allclose(img.dimension_values(2, flat=False), stored)
    assert img[2.0, 5.0] == stored[5, 2]  # sample at (b=2, a=5)
    assert img.kdims[0].name == "b" and img.kdims[1].name == "a"


def test_loss_marker_follows_the_slider(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    view.epoch.value = cfg.checkpoint_epochs[2]
    overlay = _current(view.views["loss"])
    vlines = [el for el in overlay if type(el).__name__ == "VLine"]
    assert vlines and vlines[0].data == cfg.checkpoint_epochs[2]


def test_empty_root_and_unanalysed_run_show_messages(tmp_path, smoke_run):
    app = App(str(tmp_path))
    assert app.view is None and "No runs" in app.main[0].object
    from tasks.config import preset
    from tasks.runs import prepare_run

    root = str(tmp_path / "fresh")
    prepare_run(root, preset("smoke"))
    app = App(root)
    assert app.view is not None and "no analysed checkpoints" in app.view.panel.object


def test_live_run_gains_epochs_without_moving_the_current_one(tmp_path):
    from tasks.config import preset
    from tasks.runs import analyze_epoch, prepare_run, train_run

    root = str(tmp_path)
    cfg = prepare_run(root, preset("smoke"))
    epochs = []
    train_run(root, cfg, device="cpu", on_checkpoint=epochs.append)
    analyze_epoch(root, cfg.run_id, epochs[0])
    analyze_epoch(root, cfg.run_id, epochs[1])
    app = App(root)
    view = app.view
    view.epoch.value = epochs[0]
    analyze_epoch(root, cfg.run_id, epochs[2])
    app.refresh()
    assert view.epoch.options == epochs[:3] and view.epoch.value == epochs[0]


def test_progress_views_and_threshold(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    losses = _current(view.views["progress_losses"])
    labels = {el.label for el in losses if type(el).__name__ == "Curve"}
    assert {"restricted (test)", "excluded (train)", "train", "test"} <= labels
    restricted = [el for el in losses if getattr(el, "label", "") == "restricted (train)"][0]
    assert len(restricted) == len(cfg.checkpoint_epochs)
    share_at = {}
    for t in (0.5, 0.95):
        view.threshold.value = t
        curve = [el for el in _current(view.views["specialised_share"]) if type(el).__name__ == "Curve"][0]
        share_at[t] = curve.dimension_values(1)
    assert (share_at[0.5] >= share_at[0.95]).all() and (share_at[0.5] > share_at[0.95]).any()
    from viz import progress

    keys = data.key_frequencies(root, cfg.run_id)[0]
    text = progress.key_frequency_text(root, cfg.run_id, 0.85, cfg.checkpoint_epochs[-1])
    assert keys and f"**Key frequencies**: {', '.join(map(str, keys))}" in text and "rule:" in text


def test_weights_and_attention_views_follow_the_slider(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    first, last = cfg.checkpoint_epochs[0], cfg.checkpoint_epochs[-1]
    frames = {}
    for epoch in (first, last):
        view.epoch.value = epoch
        frames[epoch] = {name: _current(view.views[name]) for name in ("attention", "class_accuracy", "wl_spectrum")}
    bars = frames[last]["attention"]
    assert set(bars.dimension_values("to")) == {"a", "b", "="}
    heads = bars.dimension_values("head")
    assert all(h.startswith("head ") and "(k=" in h for h in heads)
    totals = {}
    for h, v in zip(heads, bars.dimension_values("attention")):
        totals[h] = totals.get(h, 0) + v
    np.testing.assert_allclose(list(totals.values()), 1.0, atol=1e-4)  # attention sums to one
    test_late = [el for el in frames[last]["class_accuracy"] if el.label == "test"][0].dimension_values(1)
    test_early = [el for el in frames[first]["class_accuracy"] if el.label == "test"][0].dimension_values(1)
    assert test_late.mean() > test_early.mean()  # the smoke run learns something on test
    wl = frames[last]["wl_spectrum"].dimension_values(2, flat=False)
    assert wl.shape == (cfg.model.d_mlp, (cfg.p - 1) // 2) and np.isclose(wl.max(axis=1), 1).all()
    ratios = [el for el in _current(view.views["participation"]) if type(el).__name__ == "Curve"]
    assert {el.label for el in ratios} == {"W_E", "W_in", "W_out"}


def test_a_run_from_an_older_version_without_newer_analyses(tmp_path, smoke_run):
    """Views of analyses a store lacks show a message in place; nothing raises."""
    import shutil

    from store import layout
    from store.run_store import open_run
    from tasks.analyses import BY_NAME

    root, cfg = smoke_run
    old_root = str(tmp_path / "old")
    shutil.copytree(layout.run_dir(root, cfg.run_id), layout.run_dir(old_root, cfg.run_id))
    st = open_run(old_root, cfg.run_id)
    for name in ("weight_measures", "accuracy", "attention", "progress_measures"):
        for var in BY_NAME[name].outputs:
            del st.group[var.name]
        del st.group[f"{name}_done"]
    for coord in ("matrix", "param", "position", "split", "key_freq_mask"):
        del st.group[coord]
    data.forget()
    view = App(old_root).view
    import holoviews as hv

    for name, dmap in view.views.items():
        assert hv.render(_current(dmap)) is not None, name  # evaluates and draws without raising
    assert "not analysed" in _current(view.views["attention"]).opts.get().kwargs["title"]
