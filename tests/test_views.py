"""The run view's table of views (``viz.views``): a tab shows the views whose arrays the run's
store holds and names the others in a note; nothing raises for a run that lacks analyses."""

import shutil

import numpy as np
import panel as pn

from store import layout
from store.run_store import open_run
from viz import data, views
from viz.viewer import App


def _without(tmp_path, smoke_run, analyses, coords=()) -> str:
    """A copy of the smoke run whose store lacks these analyses (arrays and done records)."""
    from tasks.analyses import BY_NAME

    root, cfg = smoke_run
    copy = str(tmp_path / "runs")
    shutil.copytree(layout.run_dir(root, cfg.run_id), layout.run_dir(copy, cfg.run_id))
    st = open_run(copy, cfg.run_id)
    for name in analyses:
        for var in BY_NAME[name].outputs:
            del st.group[var.name]
        del st.group[f"{name}_done"]
    for coord in coords:
        del st.group[coord]
    data.forget()
    return copy


def _notes(tab) -> list[str]:
    return [md.object for md in tab.select(pn.pane.Markdown) if "not analysed" in md.object]


def test_a_run_from_an_older_version_without_newer_analyses(tmp_path, smoke_run):
    """Views of analyses a store lacks are hidden, a note naming each; nothing raises."""
    old_root = _without(tmp_path, smoke_run, ("weight_measures", "accuracy", "attention", "progress_measures"),
                        ("matrix", "param", "position", "split", "key_freq_mask"))
    view = App(old_root).view
    for tab in range(len(views.TABS)):
        view.tabs.active = tab  # every tab draws
    for name, v in view.views.items():
        assert v.figure is not None, name
    hidden = {"attention", "class_accuracy", "wl_spectrum", "participation", "weight_norms"}
    assert not hidden & set(view.views)
    notes = _notes(view.tabs[2])
    assert len(notes) == len(hidden)  # a note in place of each view
    assert all(any(views.BY_NAME[name].title in note for note in notes) for name in hidden)
    assert "attention_mean" not in view.explore.select.options.values()  # built when its tab opened


def test_a_run_without_fourier_analyses_shows_its_curves(tmp_path, smoke_run):
    """A store holding only the training series and the accuracy analysis: the curves and the
    accuracy per class are drawn and follow the slider; the Fourier and neuron views are hidden,
    each named in a note; asking for one of them alone says it is not analysed."""
    _, cfg = smoke_run
    root = _without(tmp_path, smoke_run, ("embedding_spectrum", "neuron_activations", "neuron_frequencies",
                                          "weight_measures", "attention", "progress_measures", "residual_frequencies",
                                          "logit_attribution", "logit_lens", "logit_lens_progress"), ("key_freq_mask",))
    app = App(root)
    view = app.view
    epochs = list(cfg.checkpoint_epochs)
    assert view.epochs == epochs
    assert set(view.views) == {"loss", "accuracy"}  # the first tab's views that the run has
    train = view.views["loss"].figure.renderers[0].data_source.data["y"]
    series = data.series(root, cfg.run_id)["train_loss"]
    np.testing.assert_allclose(train, np.maximum(series[~np.isnan(series)], 1e-12))
    first = _notes(view.tabs[0])
    assert len(first) == 5 and any("Embedding Fourier spectrum" in note for note in first)
    view.epoch.value = epochs[1]
    assert view.views["loss"].marker.location == view.views["accuracy"].marker.location == epochs[1]
    view.tabs.active = 1
    assert view.key_text is None and len(_notes(view.tabs[1])) == 7 and view._visible() == []  # 5 + the LLC's 2
    view.tabs.active = 2
    assert set(view.views) == {"loss", "accuracy", "class_accuracy"}
    shown = view.views["class_accuracy"].source.data["test"]
    test = list(data.coord(root, cfg.run_id, "split")).index("test")
    np.testing.assert_allclose(shown, data.epoch_slice(root, cfg.run_id, "class_accuracy", epochs[1])[test])
    view.key("next")  # keys, neurons and the threshold touch no missing view
    view.key("next_neuron")
    view.threshold.value = 0.9
    view.colour.value = view.colour.options[1]
    assert app.export_name.options == ["loss", "accuracy", "class_accuracy"]
    assert not any(w.visible for w in (view.neuron, view.colour, view.grid_choice, view.order_by, view.threshold))
    assert view.epoch.visible and view.player.visible
    alone = App(root, view="neuron_heatmap").view.panel.object
    assert "not analysed" in alone


def test_every_view_reads_arrays_the_analyses_write(smoke_run):
    """Each row's needs are arrays a fully analysed run holds (of the analyses every run gets;
    an optional one's, such as the LLC's, only a run that asks for it), and its name opens it
    alone (the page address ``&view=<name>``)."""
    from tasks.analyses import ANALYSES

    root, cfg = smoke_run
    optional = {v.name for a in ANALYSES if a.optional for v in a.outputs}
    for row in views.VIEWS:
        assert data.has(root, cfg.run_id, *row.needs) or set(row.needs) <= optional, row.name
        assert row.tab in views.TABS[:-1]
    single = App(root, view="wl_spectrum").view
    assert single.panel.object is single.views["wl_spectrum"].figure
    assert all(w.visible for w in (single.neuron, single.colour, single.grid_choice, single.order_by))
