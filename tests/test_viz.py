"""The viewer without a browser: build the app on a smoke run, drive its widgets, and check the
data each Bokeh figure holds (what the browser is sent)."""

import numpy as np
import pytest

from viz import data, generic, neurons, views
from viz.viewer import App
from viz.generic import COLOUR_MODES


def _image(view) -> np.ndarray:
    """The values an image view shows (the neuron grid sends only their colours)."""
    return view.image if isinstance(view, neurons.NeuronGrid) else np.asarray(view.source.data["image"][0])


def test_slider_drives_every_view_of_the_visible_tab(smoke_run):
    root, cfg = smoke_run
    app = App(root)
    view = app.view
    assert app.run_select.value == cfg.run_id
    assert view.epoch.options == list(cfg.checkpoint_epochs)
    assert view.epoch.value == cfg.checkpoint_epochs[-1]
    v = view.views

    def snapshot():
        return (np.array(v["embedding_spectrum"].source.data["value"]), _image(v["neuron_heatmap"]).copy(),
                _image(v["neuron_grid"]).copy(), _image(v["neuron_frequencies"]).copy())

    late = snapshot()
    view.epoch.value = cfg.checkpoint_epochs[1]
    early = snapshot()
    for a, b in zip(late, early):
        assert not np.array_equal(a, b, equal_nan=True)
    for name in ("loss", "accuracy", "spectrum_evolution"):
        assert v[name].marker.location == cfg.checkpoint_epochs[1]  # only the marker moves
    assert v["embedding_spectrum"].source.data["x"][0] == "const"  # labels from the store
    stored = data.epoch_slice(root, cfg.run_id, "embedding_spectrum", cfg.checkpoint_epochs[1])
    np.testing.assert_allclose(v["embedding_spectrum"].source.data["value"], stored)


def test_neuron_heatmap_is_oriented_matches_the_store_and_follows_the_selector(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    epoch = cfg.checkpoint_epochs[-1]
    view.neuron.value = 3
    heat = view.views["neuron_heatmap"]
    stored = data.layer_slice(root, cfg.run_id, "neuron_activations", epoch, 0, 3).astype(np.float32)
    np.testing.assert_array_equal(_image(heat), stored)  # rows a (a = 0 drawn at the bottom), columns b
    assert heat.xdim == "b" and heat.ydim == "a" and "neuron 3" in heat.figure.title.text
    order = list(view.views["neuron_frequencies"].order)
    view.walk_neuron(+1)
    assert view.neuron.value == order[order.index(3) + 1]  # next in the neuron × frequency order
    assert view.views["neuron_frequencies"].selected.location == order.index(3) + 1
    view.key("prev_neuron")
    assert view.neuron.value == 3


def test_colour_modes_make_epochs_comparable(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    heat = view.views["neuron_heatmap"]
    n = view.neuron.value
    per_epoch = (heat.mapper.low, heat.mapper.high)
    view.colour.value = COLOUR_MODES[1]  # fixed over training
    maps = [data.layer_slice(root, cfg.run_id, "neuron_activations", e, 0, n).astype(np.float32)
            for e in cfg.checkpoint_epochs]
    assert (heat.mapper.low, heat.mapper.high) == pytest.approx((min(m.min() for m in maps), max(m.max() for m in maps)))
    fixed = (heat.mapper.low, heat.mapper.high)
    view.epoch.value = cfg.checkpoint_epochs[0]
    assert (heat.mapper.low, heat.mapper.high) == fixed  # the same range at every epoch
    view.colour.value = COLOUR_MODES[2]  # symmetric about 0, diverging palette
    assert -heat.mapper.low == heat.mapper.high == pytest.approx(max(abs(fixed[0]), abs(fixed[1])))
    assert heat.mapper.palette[0] != heat.palette[0]
    grid = view.views["neuron_grid"]
    assert grid.mapper.low == -grid.mapper.high
    view.colour.value = COLOUR_MODES[0]
    view.epoch.value = cfg.checkpoint_epochs[-1]
    assert (heat.mapper.low, heat.mapper.high) == pytest.approx(per_epoch)


def test_neuron_grid_is_one_mosaic_of_the_chosen_neurons(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    grid, last = view.views["neuron_grid"], cfg.checkpoint_epochs[-1]
    acts = data.layer_slice(root, cfg.run_id, "neuron_activations", last, 0).astype(np.float32)
    var = acts.reshape(len(acts), -1).var(axis=1)
    assert set(grid.neurons) == set(np.argsort(-var)[:16]) and len(grid.neurons) == 16
    image, p = _image(grid), cfg.p
    # the first tile (top left) is the first neuron's map, a = 0 at the tile's bottom
    np.testing.assert_array_equal(image[-p:, :p], acts[grid.neurons[0]])
    assert grid.neuron_at(1, image.shape[0] - 1) == grid.neurons[0]
    assert grid.neuron_at(p + 0.5 * grid.gap, 1) is None  # a gap
    assert np.nanmin(image) == grid.mapper.low and np.nanmax(image) == grid.mapper.high  # one shared range
    view.grid_size.value = 4
    assert len(grid.neurons) == 4 and _image(grid).shape == (2 * p + grid.gap, 2 * p + grid.gap)
    clusters = neurons.clusters(root, cfg.run_id, last, view.threshold.value)
    k = next(iter(clusters))
    view.grid_choice.value = k
    assert grid.neurons == tuple(clusters[k][:4]) and f"k={k}" in grid.figure.title.text
    grid.on_pick(grid.neurons[1])
    assert view.neuron.value == grid.neurons[1]


def test_neuron_frequency_view_sorts_clusters_into_blocks(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    nf, last = view.views["neuron_frequencies"], cfg.checkpoint_epochs[-1]
    frac = data.layer_slice(root, cfg.run_id, "neuron_freq_fraction", last, 0)
    shown = _image(nf)
    np.testing.assert_array_equal(shown, frac[nf.order])
    live = shown.max(axis=1) > 0
    assert (np.diff(shown.argmax(axis=1)[live]) >= 0).all() and not live[live.argmin():].any()  # blocks; silent last
    ids = np.asarray(nf.source.data["neuron"][0])
    assert (ids[:, 0] == nf.order).all()  # the hover names each row's neuron
    view.order_by.value = neurons.ORDERS[2]
    np.testing.assert_array_equal(_image(nf), frac)
    nf.on_pick(int(nf.order[7]))
    assert view.neuron.value == 7


def test_clicks_and_keys_move_the_epoch(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    epochs = list(cfg.checkpoint_epochs)
    view.views["loss"].on_tap(epochs[1] + 3.2)  # a click on the loss curve: nearest checkpoint
    assert view.epoch.value == epochs[1]
    assert view.player.value == epochs[1]
    for action, expected in (("next", epochs[2]), ("prev", epochs[1]), ("last", epochs[-1]), ("first", epochs[0]),
                             ("prev", epochs[0])):
        view.key(action)
        assert view.epoch.value == expected, action
    view.key("play")
    assert view.player.direction == 1
    view.key("play")
    assert view.player.direction == 0
    view.player.value = epochs[3]  # the player drives the slider
    assert view.epoch.value == epochs[3]


def test_state_from_the_address_and_one_view_alone(smoke_run):
    root, cfg = smoke_run
    epoch = cfg.checkpoint_epochs[2]
    app = App(root, run=cfg.run_id, epoch=epoch, neuron=11)
    assert app.view.epoch.value == epoch and app.view.neuron.value == 11
    single = App(root, run=cfg.run_id, epoch=epoch, view="neuron_heatmap")
    assert single.view.panel.object is single.view.views["neuron_heatmap"].figure
    stored = data.layer_slice(root, cfg.run_id, "neuron_activations", epoch, 0, single.view.neuron.value)
    np.testing.assert_array_equal(_image(single.view.views["neuron_heatmap"]), stored.astype(np.float32))
    alone = App(root, run=cfg.run_id, epoch=epoch, view="attention").view  # a view of a later tab
    np.testing.assert_allclose(alone.views["attention"].source.data["a"],
                               data.layer_slice(root, cfg.run_id, "attention_mean", epoch, 0)[:, 0])
    odd = App(root, run=cfg.run_id, view="no_such_view")
    assert "No view named" in odd.view.panel.object


def test_export_writes_a_standalone_html_of_the_view(smoke_run):
    root, cfg = smoke_run
    app = App(root)
    app.view.epoch.value = cfg.checkpoint_epochs[1]
    for name in ("neuron_heatmap", "loss"):
        app.export_name.value = name
        html = app._export().read()
        assert app.export.filename == f"{cfg.run_id}-{name}-epoch{cfg.checkpoint_epochs[1]}.html"
        assert "<html" in html and "Bokeh" in html and len(html) > 100_000  # resources inline
        assert f"epoch {cfg.checkpoint_epochs[1]}" in html


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
    from store.run_store import open_run

    writer = open_run(root, cfg.run_id)  # as if the trainer were still at epoch 100
    writer.group.attrs["trained_through"] = 100
    app = App(root)
    view = app.view
    view.epoch.value = epochs[0]
    checkpoints = view.views["loss"].figure.renderers[-1].data_source  # the analysed checkpoints marked
    assert len(checkpoints.data["x"]) == 2
    analyze_epoch(root, cfg.run_id, epochs[2])
    app.refresh()
    assert view.epoch.options == epochs[:3] and view.epoch.value == epochs[0]
    assert view.player.options == epochs[:3] and view.player.value == epochs[0]
    assert len(checkpoints.data["x"]) == 3  # redrawn in place
    series = writer.series()  # the trainer goes on: more epochs, new losses
    series["train_loss"][:] = series["train_loss"] * 0.5
    writer.write_series(series, 0, cfg.num_epochs)
    app.refresh()
    assert view.trained_through == cfg.num_epochs - 1 and f"**epochs** {cfg.num_epochs}/" in view.info.object
    train = view.views["loss"].figure.renderers[0].data_source.data["y"]
    np.testing.assert_allclose(train, np.maximum(series["train_loss"][~np.isnan(series["train_loss"])], 1e-12))


def test_every_analysis_in_the_table_has_a_view(smoke_run):
    """The viewer follows the analysis table: each variable an analysis writes is listed on the
    'Every analysis' tab and drawn by the shape of its dimensions, following the slider."""
    from tasks.analyses import variables

    root, cfg = smoke_run
    view = App(root).view
    view.tabs.active = views.TABS.index(views.EVERY)
    explore = view.explore
    declared = {v.name for v in variables() if not v.name.endswith("_done") and v.dims[:1] == ("epoch",)}
    assert declared == set(explore.select.options.values())
    for i, name in enumerate(sorted(declared)):
        explore.select.value = name
        shown = explore.view
        epoch = cfg.checkpoint_epochs[1 + i % 2]
        view.epoch.value = epoch  # the tab's view follows the slider
        at = (0,) if generic.shown_dims(root, cfg.run_id, name)[0] else ()  # a per-layer variable: its one layer
        stored = np.asarray(data.epoch_slice(root, cfg.run_id, name, epoch, *at), dtype=np.float64)
        if isinstance(shown, generic.Bars):
            np.testing.assert_allclose(shown.source.data["value"], np.nan_to_num(stored), err_msg=name)
        elif isinstance(shown, generic.Heatmap):
            expected = stored[0] if shown.idim else stored  # item 0 of an indexed variable
            np.testing.assert_allclose(_image(shown), expected, rtol=1e-6, err_msg=name)
        else:
            assert shown.marker.location == epoch, name
            epochs, values = data.measure(root, cfg.run_id, name)
            drawn = shown.figure.renderers[0].data_source.data
            np.testing.assert_allclose(drawn["y"], values.reshape(len(epochs), -1)[:, 0], err_msg=name)


def test_compare_overlays_one_curve_per_run(smoke_run, tmp_path):
    from viz import compare

    root, cfg = smoke_run
    page = compare.Compare(root, cfg.run_id)
    assert page.runs.value == [cfg.run_id]
    assert {"test loss", "logit_periodicity", "restricted_loss [test]"} <= set(page.measure.options)
    page.measure.value = "restricted_loss [test]"
    (curve,) = list(page.element)
    assert page.plot.object.name == "compare" and len(page.plot.object.renderers) == 1
    x, y = compare.values(root, cfg.run_id, "restricted_loss", 1)
    np.testing.assert_array_equal(curve.dimension_values(1), np.maximum(y, 1e-12))
    assert curve.label == cfg.run_id and list(x) == list(cfg.checkpoint_epochs)


def test_train_form_reports_bad_input_next_to_each_field():
    from viz import train

    cfg, changed, errors = train.parse("smoke", {"p": "33", "lr": "fast", "frac_train": "1.5", "seed": "7"})
    assert cfg is None
    assert "odd prime" in errors["p"] and "number" in errors["lr"] and "frac_train" in errors["frac_train"]
    assert "seed" not in errors
    cfg, changed, errors = train.parse("smoke", {"p": "31", "seed": "7", "num_epochs": "60"})
    assert not errors and changed == {"seed": 7, "num_epochs": 60} and cfg.seed == 7
    cmd = train.command("/runs", "smoke", changed)
    assert cmd[1:] == ["-m", "cli.main", "run", "--preset", "smoke", "--seed", "7", "--epochs", "60",
                       "--runs", "/runs", "--threads", "1"]
    from cli.main import parser  # the flags are the CLI's

    args = parser().parse_args(cmd[3:])
    assert args.seed == 7 and args.num_epochs == 60 and args.runs == "/runs"
    page = train.TrainPage("/runs", on_open=lambda run_id: None)
    task = page.inputs["task"]
    assert task.value == "add" and task.options["div: (a · b⁻¹) mod p"] == "div" and len(task.options) == 7
    task.value = "mul"
    cfg, changed = page.check()
    assert cfg.task == "mul" and changed == {"task": "mul"}
    assert train.command("/runs", "smoke", changed)[6:8] == ["--task", "mul"]


def test_curves_draw_the_elements_data(smoke_run):
    from viz import curves, plots

    root, cfg = smoke_run
    element = plots.loss_curves(root, cfg.run_id)
    fig = curves.render(element)
    drawn = [r.data_source.data for r in fig.renderers]
    for el, d in zip(element, drawn):
        np.testing.assert_array_equal(d["x"], el.dimension_values(0))
        np.testing.assert_array_equal(d["y"], el.dimension_values(1))
    assert fig.y_scale.__class__.__name__ == "LogScale" and fig.output_backend == "canvas"
    assert [item.label["value"] for item in fig.legend[0].items] == ["train", "test", "checkpoints"]


def test_a_page_carries_no_glyph_variant_that_nothing_uses(smoke_run):
    """Nothing on the page selects (a click on a curve is a Tap event: no selection tool, so a
    click never dims the other curves), so no renderer carries a non-selection glyph; only
    curves in a legend (which mutes them on a click) keep a muted one."""
    from bokeh.models import GlyphRenderer, TapTool

    root, _ = smoke_run
    app = App(root)
    app.layout.get_root()
    for name, view in app.view.views.items():
        fig = view.figure
        if fig is None:
            continue
        in_legend = {r.id for group in fig.legend for item in group.items for r in item.renderers}
        assert not fig.select(type=TapTool), name
        for r in fig.select(type=GlyphRenderer):
            assert r.nonselection_glyph is None, name
            assert (r.muted_glyph is not None) == (r.id in in_legend), name


def _legend(fig) -> list[str]:
    return [item.label["value"] for legend in fig.legend for item in legend.items]


def test_progress_views_and_threshold(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    view.tabs.active = 1
    losses = view.views["progress_losses"].figure
    assert {"restricted (test)", "excluded (train)", "train", "test"} <= set(_legend(losses))
    restricted = losses.renderers[_legend(losses).index("restricted (train)")].data_source.data["y"]
    assert len(restricted) == len(cfg.checkpoint_epochs)
    share_at = {}
    for t in (0.5, 0.95):
        view.threshold.value = t
        share_at[t] = np.asarray(view.views["specialised_share"].figure.renderers[0].data_source.data["y"])
    assert (share_at[0.5] >= share_at[0.95]).all() and (share_at[0.5] > share_at[0.95]).any()
    keys = data.key_frequencies(root, cfg.run_id)[0]
    assert keys and f"**Key frequencies**: {', '.join(map(str, keys))}" in view.key_text.object
    view.epoch.value = cfg.checkpoint_epochs[1]
    assert f"at epoch {cfg.checkpoint_epochs[1]}" in view.key_text.object
    assert view.views["gini"].marker.location == cfg.checkpoint_epochs[1]


def test_weights_and_attention_views_follow_the_slider(smoke_run):
    root, cfg = smoke_run
    view = App(root).view
    view.tabs.active = 2
    first, last = cfg.checkpoint_epochs[0], cfg.checkpoint_epochs[-1]
    frames = {}
    for epoch in (first, last):
        view.epoch.value = epoch
        frames[epoch] = {name: dict(view.views[name].source.data) for name in ("attention", "class_accuracy")}
        frames[epoch]["wl"] = np.asarray(view.views["wl_spectrum"].source.data["image"][0]).copy()
    att = frames[last]["attention"]
    total = sum(np.asarray(att[p]) for p in ("a", "b", "="))
    np.testing.assert_allclose(total, 1.0, atol=1e-4)  # attention from '=' sums to one per head
    assert all(1 <= k <= (cfg.p - 1) // 2 for k in att["k"])
    assert np.mean(frames[last]["class_accuracy"]["test"]) > np.mean(frames[first]["class_accuracy"]["test"])
    wl = frames[last]["wl"]
    assert wl.shape == (cfg.model.d_mlp, (cfg.p - 1) // 2) and np.isclose(wl.max(axis=1), 1).all()
    assert not np.array_equal(wl, frames[first]["wl"])
    matrices = {"W_E", *map(str, data.coord(root, cfg.run_id, "layer_matrix"))}  # W_E, and the layer's W_Q .. W_out
    assert set(_legend(view.views["participation"].figure)) == matrices


def test_a_damaged_store_shows_a_message(tmp_path, smoke_run):
    import shutil

    from store import layout

    root, cfg = smoke_run
    broken = str(tmp_path / "broken")
    shutil.copytree(layout.run_dir(root, cfg.run_id), layout.run_dir(broken, cfg.run_id))
    with open(f"{layout.store_path(broken, cfg.run_id)}/zarr.json", "w") as f:
        f.write("{ not json")
    app = App(broken)
    assert app.view is None and "cannot be shown yet" in app.main[0].object


def test_a_run_started_from_the_train_page_is_not_the_viewers_to_end(monkeypatch):
    """The run outlives the viewer: it does not carry the viewer's guard token (cli.guard), which
    would make the viewer's watchdog end the processes the run forks."""
    from cli import guard
    from viz import train

    monkeypatch.setenv(guard.ENV, "123-456")
    env = train._detached_env()
    assert guard.ENV not in env and env["OMP_NUM_THREADS"] == "1"
