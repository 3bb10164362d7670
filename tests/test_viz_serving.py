"""What the viewer's server sends and how it starts: images as colours where that is cheaper
for the browser, and a warm-up run of the app (``tdw serve``) that leaves nothing running."""

import numpy as np
import pytest

from viz import generic
from viz.viewer import App
from viz.generic import COLOUR_MODES


def test_images_are_coloured_as_bokehs_colour_mapper_would():
    """The images travel as colours (``generic.to_rgba``): palette entry floor((v - low) /
    (high - low) * n), clipped, NaN white, packed as image_rgba's bytes R, G, B, A."""
    palette = ["#000000", "#ff0000", "#00ff00", "#0000ff"]
    values = np.array([[0.0, 0.24, 0.25, 0.5], [0.74, 0.75, 1.0, np.nan], [-5.0, 7.0, 0.99, 0.0]])
    rgba = generic.to_rgba(values, 0.0, 1.0, palette)
    black, red, green, blue, white = 0xFF000000, 0xFF0000FF, 0xFF00FF00, 0xFFFF0000, 0xFFFFFFFF
    assert rgba.dtype == np.uint32 and rgba.shape == values.shape
    assert rgba.tolist() == [[black, black, red, green], [green, blue, blue, white], [black, blue, blue, black]]
    assert (generic.to_rgba(np.full((2, 2), 3.0), 3.0, 3.0, palette) == black).all()  # a flat image: no NaN


def test_the_neuron_grid_draws_the_colours_of_its_values(smoke_run):
    view = App(smoke_run[0]).view
    grid = view.views["neuron_grid"]
    for mode in COLOUR_MODES:
        view.colour.value = mode
        rgba, m = np.asarray(grid.source.data["rgba"][0]), grid.mapper
        assert "image" not in grid.source.data  # the values stay on the server
        np.testing.assert_array_equal(rgba, generic.to_rgba(grid.image, m.low, m.high, m.palette), err_msg=mode)


def test_pages_on_the_same_epoch_share_the_grids_colours(smoke_run):
    """The neuron grid's frame (tiles, colours) is made once per process for every page showing
    it (``neurons.grid_frame``), read-only; a page with other choices gets its own; forgetting
    the reads (a run re-created) drops it too."""
    from viz import data, neurons

    first, second = App(smoke_run[0]).view, App(smoke_run[0]).view
    grids = [v.views["neuron_grid"] for v in (first, second)]
    shared = [g.source.data["rgba"][0] for g in grids]
    assert shared[0] is shared[1] and not shared[0].flags.writeable
    second.colour.value = COLOUR_MODES[2]
    assert grids[1].source.data["rgba"][0] is not shared[0]
    np.testing.assert_array_equal(grids[0].source.data["rgba"][0], shared[0])  # the first page is untouched
    second.colour.value = first.colour.value
    second.grid_size.value = next(n for n in second.grid_size.options if n != first.grid_size.value)  # other neurons
    assert grids[1].neurons != grids[0].neurons and grids[1].source.data["rgba"][0] is not shared[0]
    assert neurons.grid_frame.cache_info().currsize > 0
    data.forget()
    assert neurons.grid_frame.cache_info().currsize == 0


def test_a_warm_up_run_of_the_app_leaves_no_refresh_running(smoke_run, monkeypatch):
    """`tdw serve` runs the app once at start-up (``panel serve --warm``), outside any session:
    that run must not start the periodic refresh, which would then poll the store forever."""
    import panel as pn

    started = []
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda *a, **k: started.append(a))
    App(smoke_run[0]).servable()
    assert started == []


@pytest.mark.slow  # builds the viewer's page several times
def test_a_second_visit_is_served_from_a_spare_page_while_its_run_is_unchanged(smoke_run, monkeypatch):
    """``viz.spare``: once a page is served, the next visit to the same address (``/app`` is
    ``/app?run=<the last run>``) takes a page built in the background, showing what a fresh page
    would; a page for another address is built afresh; once what it was built from changes
    (here the run's training progress), the visit builds its page afresh."""
    import threading

    from viz import viewer
    from viz import data, spare

    root, cfg = smoke_run
    built = []

    class Recorded(viewer.App):
        def __init__(self, *args, **kwargs):
            built.append(threading.current_thread().name.startswith("tdw-spare"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(viewer, "App", Recorded)
    spare.discard()
    try:
        first = viewer.page(root, run=cfg.run_id)  # outside a session its spare is prepared at once
        spare.settle()
        assert built == [False, True]
        second = viewer.page(root)  # the same page: the spare (a new one is then being built)
        assert False not in built[2:] and second is not first
        assert (second.view.epoch.value, second.view.neuron.value) == (first.view.epoch.value, first.view.neuron.value)
        for name in ("neuron_heatmap", "neuron_grid", "embedding_spectrum"):
            a, b = first.view.views[name].source.data, second.view.views[name].source.data
            assert a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a), name
        spare.settle()
        n = len(built)
        other = viewer.page(root, run=cfg.run_id, epoch=first.view.epochs[0])
        assert built[n] is False and other.view.epoch.value == first.view.epochs[0]
        spare.settle()
        viewer.page(root, run=cfg.run_id)  # built afresh (the spare is for the other address), and a spare again
        spare.settle()
        spare.settle()
        trained = data.trained_through(root, cfg.run_id)
        monkeypatch.setattr(data, "trained_through", lambda *_: trained + 1)
        n = len(built)
        viewer.page(root, run=cfg.run_id)
        assert built[n] is False  # built afresh: the spare's run has moved on
    finally:
        spare.settle()
        spare.discard()


def test_a_spare_discarded_while_it_is_built_is_not_kept():
    """``spare.discard()`` (the store was found damaged or gone) also drops the spare being built
    then: it read what was dropped. A spare is taken only for its own address and stamp."""
    import threading

    from viz import spare

    spare.discard()
    release = threading.Event()
    spare.prepare("a", lambda: 1, lambda: release.wait(10) and "page")
    spare.discard()
    release.set()
    spare.settle()
    assert spare.take("a", lambda: 1) is None
    spare.prepare("a", lambda: 1, lambda: "page")
    spare.settle()
    assert spare.take("b", lambda: 1) is None and spare.take("a", lambda: 2) is None  # another address; stale
    spare.prepare("a", lambda: 1, lambda: "page")
    spare.settle()
    assert spare.take("a", lambda: 1) == "page" and spare.take("a", lambda: 1) is None  # taken once
