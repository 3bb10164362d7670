"""The viewer and a zoom: "add checkpoints here" starts ``tdw zoom`` on the typed range or the
loss plot's visible one, its progress shows, and the open page's slider gains the new epochs
without moving the current one."""

import subprocess
import sys

import pytest

from tasks import zoom
from tasks.config import preset
from tasks.runs import analysis_to_do, analyze_epoch, prepare_run, train_run
from viz import zoom as zoom_view
from viz.viewer import App


def _analyse(root: str, run_id: str) -> None:
    for epoch in analysis_to_do(root, run_id):
        analyze_epoch(root, run_id, epoch)


def _run(root: str):
    cfg = prepare_run(root, preset("smoke", num_epochs=81, checkpoint_epochs=(0, 40, 80), state_every=20))
    train_run(root, cfg, device="cpu")
    _analyse(root, cfg.run_id)
    return cfg


@pytest.mark.slow
def test_an_open_page_gains_the_zoomed_epochs_without_moving_the_current_one(tmp_path):
    root = str(tmp_path)
    cfg = _run(root)
    app = App(root)
    view = app.view
    view.epoch.value = 40
    zoom.zoom(root, cfg.run_id, [50, 60], device="cpu")
    app.refresh()  # grown, nothing analysed yet: the slider is as it was
    assert view.epoch.options == [0, 40, 80] and view.epoch.value == 40
    _analyse(root, cfg.run_id)
    app.refresh()
    assert view.epoch.options == [0, 40, 50, 60, 80] and view.epoch.value == 40
    assert view.player.options == [0, 40, 50, 60, 80] and view.player.value == 40
    view.epoch.value = 50  # the new epoch's views read from the store
    assert view.epoch.value == 50


@pytest.mark.slow
def test_the_form_takes_the_loss_plots_range_and_shows_the_zooms_progress(tmp_path, monkeypatch):
    root = str(tmp_path)
    cfg = _run(root)
    monkeypatch.setattr(zoom_view, "ZOOMS", {})  # this server's zooms: none yet
    view = App(root).view
    form = view.zoom
    view.views["loss"].figure.x_range.start, view.views["loss"].figure.x_range.end = 44.6, 61.2  # a box zoom
    form.take_plot_range()
    assert (form.start.value, form.stop.value) == (45, 61)
    form.start.value, form.stop.value, form.count.value = 45, 65, 1
    assert zoom_view.command(root, cfg.run_id, 45, 65, 1)[3:] == [
        "zoom", cfg.run_id, "--from", "45", "--to", "65", "--count", "1", "--runs", root, "--threads", "1"]
    started = []
    monkeypatch.setattr(zoom_view, "start", lambda *args: started.append(args))
    form.submit()
    assert started == [(root, cfg.run_id, 45, 65, 1)]
    # what the started process does, and the form's progress line on the way
    job = zoom_view.Job(cfg.run_id, root, subprocess.Popen([sys.executable, "-c", "pass"]), "/dev/null", 0.0)
    zoom_view.ZOOMS[cfg.run_id] = zoom_view.Zoom(job, [55])
    job.proc.wait()
    assert zoom_view.status(zoom_view.ZOOMS[cfg.run_id], [0, 40, 80]) == (0.0, "finished · replayed 0/1 · analysed 0/1")
    zoom.zoom(root, cfg.run_id, [55], device="cpu")
    _analyse(root, cfg.run_id)
    view.refresh()
    assert form.bar.value == 1000 and form.note.object == "finished · replayed 1/1 · analysed 1/1"
    form.start.value, form.stop.value = 70, 60
    form.submit()
    assert "after" in form.note.object
