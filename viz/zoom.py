""""Add checkpoints here": a run page's form that starts ``tdw zoom`` on a range of epochs (typed,
or taken from the loss plot's visible range after a box zoom) in its own background process,
as the Train page starts ``tdw run`` (``viz.train``), and shows its progress: new checkpoints
replayed, then analysed. The page's refresh (``viz.run_view``) puts the new epochs on the
slider as they are analysed, without moving the current epoch.

Started zooms are kept per server process (``ZOOMS``), so a reloaded page still shows them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import panel as pn

from store import files, layout
from tasks.transitions import spread
from viz import data
from viz.train import LOGS, Job, _detached_env

DEFAULT_COUNT = 20


@dataclass
class Zoom:
    job: Job
    epochs: list[int]  # the epochs asked for (those already checkpoints are left out by tdw zoom)


ZOOMS: dict[str, Zoom] = {}  # run id -> its latest zoom, shared by every session of this server


def command(root: str, run_id: str, start: int, stop: int, count: int) -> list[str]:
    return [sys.executable, "-m", "cli.main", "zoom", run_id, "--from", str(start), "--to", str(stop),
            "--count", str(count), "--runs", root, "--threads", "1"]


def start(root: str, run_id: str, start_epoch: int, stop: int, count: int) -> Zoom:
    """Start ``tdw zoom`` in a new process (its own session: it outlives the page)."""
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, f"zoom-{run_id}-{int(time.time())}.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(command(root, run_id, start_epoch, stop, count), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_detached_env())
    zoom = ZOOMS[run_id] = Zoom(Job(run_id, root, proc, log, time.time()), spread(start_epoch, stop, count))
    return zoom


def status(zoom: Zoom, checkpoints: list[int]) -> tuple[float, str]:
    """(fraction done in [0, 1], one line). ``checkpoints``: the run's schedule before the zoom.
    Half for the replay (checkpoint files written), half for the analyses."""
    job, new = zoom.job, [e for e in zoom.epochs if e not in checkpoints]
    if not new:
        return 1.0, f"{job.state()} · no new epochs in that range"
    written = sum(files.isfile(layout.checkpoint_path(job.root, job.run_id, e)) for e in new)
    analysed = len(set(new) & set(data.analysed_epochs(job.root, job.run_id)))
    return (written + analysed) / (2 * len(new)), \
        f"{job.state()} · replayed {written}/{len(new)} · analysed {analysed}/{len(new)}"


class ZoomForm:
    """From, to, how many; "add checkpoints here"; the progress of this run's latest zoom.
    ``visible_range()`` gives the loss plot's visible epochs (None before it is drawn)."""

    def __init__(self, root: str, run_id: str, last: int, visible_range: Callable[[], tuple[float, float] | None]):
        self.root, self.run_id, self.visible_range = root, run_id, visible_range
        self.checkpoints = list(data.config(root, run_id)["checkpoint_epochs"])
        self.start = pn.widgets.IntInput(label="From epoch", start=0, end=last, value=0, width=95)
        self.stop = pn.widgets.IntInput(label="To epoch", start=0, end=last, value=last, width=95)
        self.count = pn.widgets.IntInput(label="How many", start=1, end=1000, value=DEFAULT_COUNT, width=80)
        self.from_plot = pn.widgets.Button(label="Loss plot's range", width=140, margin=(24, 5, 5, 5),
                                           description="the epochs the loss plot shows (box-zoom it first)")
        self.button = pn.widgets.Button(label="Add checkpoints here", color="primary", width=300)
        self.bar = pn.indicators.Progress(value=0, max=1000, width=300, visible=False)
        self.note = pn.pane.Markdown("", width=300, css_classes=["zoom-status"])
        self.from_plot.on_click(lambda _: self.take_plot_range())
        self.button.on_click(lambda _: self.submit())
        self.panel = pn.Column(pn.Row(self.start, self.stop, self.count), self.from_plot, self.button,
                               self.bar, self.note)
        self.refresh()

    def take_plot_range(self) -> None:
        shown = self.visible_range()
        if shown is None:
            self.note.object = "The loss plot is not drawn yet."
            return
        low, high = (min(max(int(round(x)), 0), self.stop.end) for x in shown)
        self.start.value, self.stop.value = low, high

    def submit(self) -> None:
        running = ZOOMS.get(self.run_id)
        if running is not None and running.job.state() == "running":
            self.note.object = "A zoom of this run is running already."
            return
        if self.start.value > self.stop.value:
            self.note.object = f"⚠ from {self.start.value} is after to {self.stop.value}"
            return
        self.checkpoints = list(data.config(self.root, self.run_id)["checkpoint_epochs"])
        start(self.root, self.run_id, self.start.value, self.stop.value, self.count.value)
        self.refresh()

    def refresh(self) -> None:
        zoom = ZOOMS.get(self.run_id)
        if zoom is None or zoom.job.root != self.root:
            return
        fraction, line = status(zoom, self.checkpoints)
        self.bar.visible, self.bar.value = True, int(1000 * fraction)
        failed = zoom.job.state().startswith("failed")
        self.note.object = line + (f"\n```\n{zoom.job.log_tail(3)}\n```" if failed else "")
