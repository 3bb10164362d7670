"""The Train page: a form with the presets and the knobs that have a label in
``tasks.knobs.KNOBS`` (a text field each, a checkbox for a switch, a choice for the task and the
initialisation), which starts ``tdw run`` (the pipeline flow: train, then analyse every
checkpoint as it lands) in its own background process, never in the server's callbacks. Bad input is reported next to its field (the
config's own validation, ``tasks.config.ConfigError``). Progress comes from the run's
progress file (``tasks.progress``) and its store; with ``PREFECT_API_URL`` set, the flow run
also shows in the Prefect UI.

Started jobs are kept per server process (``JOBS``), so a reloaded page still lists them; the
processes outlive the page (training goes on in the background)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import panel as pn

from cli import guard
from store.run_store import StoreError
from tasks import progress
from tasks.config import INITS, PRESETS, ConfigError, RunConfig, preset
from tasks.knobs import KNOBS, build_config
from tasks.problems import PROBLEMS
from viz import data

FIELDS = {k.name: k for k in KNOBS if k.label}  # form field -> its knob
LOGS = os.path.join(tempfile.gettempdir(), "tdw-train-logs")


@dataclass
class Job:
    run_id: str
    root: str
    proc: subprocess.Popen
    log: str
    started: float

    def state(self) -> str:
        rc = self.proc.poll()
        return "running" if rc is None else ("finished" if rc == 0 else f"failed (exit code {rc})")

    def log_tail(self, lines: int = 6) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


JOBS: dict[str, Job] = {}  # run id -> its latest job, shared by every session of this server


def value_of(cfg: RunConfig, name: str):
    """A form field's value in ``cfg``."""
    return FIELDS[name].value(cfg)


def parse(preset_name: str, texts: dict[str, str | bool]) -> tuple[RunConfig | None, dict[str, object], dict[str, str]]:
    """Form values (text, or a checkbox's bool) -> (config, the values that differ from the
    preset, errors by field). A field left blank keeps the preset's value; each value is
    checked alone so that its error lands next to its own field."""
    base = preset(preset_name)
    values, errors = {}, {}
    for name, knob in FIELDS.items():
        given = texts.get(name)
        if isinstance(given, bool):  # a checkbox
            values[name] = given
            continue
        text = (given or "").strip()
        if not text:
            continue
        try:
            values[name] = knob.kind(text)
        except ValueError:
            errors[name] = f"{'a whole number' if knob.kind is int else 'a number'} is needed, got {text!r}"
            continue
        try:
            build_config(preset_name, **{name: values[name]})
        except ConfigError as exc:
            errors[name] = str(exc)
    if errors:
        return None, {}, errors
    changed = {k: v for k, v in values.items() if v != value_of(base, k)}
    try:
        return build_config(preset_name, **changed), changed, {}
    except ConfigError as exc:  # a combination no single field breaks
        return None, {}, {"form": str(exc)}


def command(root: str, preset_name: str, changed: dict[str, object], llc: bool = False) -> list[str]:
    """``tdw run`` with the changed knobs; ``llc``: with ``--llc``."""
    flags = [x for name, v in changed.items() for x in FIELDS[name].argv(v)] + ["--llc"] * llc
    return [sys.executable, "-m", "cli.main", "run", "--preset", preset_name, *flags, "--runs", root, "--threads", "1"]


def _detached_env() -> dict[str, str]:
    """The viewer's environment for a run meant to outlive it: one torch thread, and without the
    viewer's guard token (``cli.guard``), which would mark the run's forked processes as the
    viewer's, to be ended with it."""
    env = {k: v for k, v in os.environ.items() if k != guard.ENV}
    return {**env, "OMP_NUM_THREADS": "1"}


def start(root: str, preset_name: str, changed: dict[str, object], run_id: str, llc: bool = False) -> Job:
    """Start ``tdw run`` (``--llc`` if asked) in a new process (its own session: it outlives the
    page) and return its job; stdout and stderr go to a log file."""
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, f"{run_id}-{int(time.time())}.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(command(root, preset_name, changed, llc), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_detached_env())
    JOBS[run_id] = job = Job(run_id, root, proc, log, time.time())
    return job


def status(job: Job) -> tuple[float, str]:
    """(fraction trained in [0, 1], one line: state, epoch and losses, checkpoints analysed)."""
    snap = progress.read(job.root, job.run_id)
    try:
        analysed = f" · analysed {len(data.analysed_epochs(job.root, job.run_id))} checkpoint(s)"
    except (StoreError, KeyError, OSError):
        analysed = ""
    return progress.fraction(snap), f"{job.state()} · {progress.describe(snap)}{analysed}"


def _field(name: str, knob) -> pn.widgets.Widget:
    """A knob's form field: a checkbox for a switch, a choice of the registry's tasks (each
    named with its formula) for the task, a choice of the schemes for the initialisation, else a
    text field."""
    if knob.kind is bool:
        return pn.widgets.Checkbox(label=knob.label, width=200, margin=(20, 10))
    if name == "task":
        return pn.widgets.Select(label="task", options={f"{t}: {p.formula}": t for t, p in PROBLEMS.items()},
                                 width=200)
    if name == "init":
        return pn.widgets.Select(label=knob.label, options=list(INITS), width=200)
    return pn.widgets.TextInput(label=knob.label, width=200)


class TrainPage:
    """The form, the start button and the list of started jobs. ``on_open(run_id)`` shows a run."""

    def __init__(self, root: str, on_open: Callable[[str], None]):
        self.root, self.on_open = root, on_open
        self.preset = pn.widgets.Select(label="Preset", options=list(PRESETS), value="smoke", width=200)
        self.inputs = {name: _field(name, k) for name, k in FIELDS.items()}
        self.errors = {name: pn.pane.HTML("", width=420, margin=(30, 5, 0, 5), css_classes=["field-error"],
                                          styles={"color": "#c62828"}) for name in (*FIELDS, "form")}
        self.llc = pn.widgets.Checkbox(label="LLC: the local learning coefficient of every checkpoint "
                                       "(SGLD, after training; slower than every other analysis together)",
                                       width=640, disabled=importlib.util.find_spec("devinterp") is None)
        self.start_button = pn.widgets.Button(label="Start training", color="primary", width=200)
        self.note = pn.pane.Markdown(width=640)
        self.jobs = pn.Column()
        self.rows: dict[str, tuple] = {}
        self.preset.param.watch(lambda _: self._fill(), "value")
        for widget in self.inputs.values():
            widget.param.watch(lambda _: self.check(), "value")
        self.start_button.on_click(lambda _: self.submit())
        self._fill()
        api = os.environ.get("PREFECT_API_URL", "")
        where = (f"the Prefect UI at {api.removesuffix('/api')}" if api else
                 "Prefect's local database (set `PREFECT_API_URL` to follow it in a Prefect UI)")
        self.panel = pn.Column(
            pn.pane.Markdown("### Train and analyse a run\nThe run trains and is analysed in a background "
                             f"process (`tdw run`); its flow run is recorded in {where}. Blank fields keep "
                             "the preset's value.", width=640),
            self.preset, *[pn.Row(self.inputs[n], self.errors[n]) for n in FIELDS], self.llc,
            pn.Row(self.start_button, self.errors["form"]), self.note, pn.pane.Markdown("### Started here"),
            self.jobs, name="Train")
        self.refresh()

    def _fill(self) -> None:
        base = preset(self.preset.value)
        for name, widget in self.inputs.items():
            value = value_of(base, name)
            widget.value = value if isinstance(value, bool) else str(value)
        self.check()

    def check(self) -> tuple[RunConfig | None, dict]:
        cfg, changed, errors = parse(self.preset.value, {n: w.value for n, w in self.inputs.items()})
        for name, pane in self.errors.items():
            pane.object = f"⚠ {errors[name]}" if name in errors else ""
        self.start_button.disabled = cfg is None
        return cfg, changed

    def submit(self) -> None:
        cfg, changed = self.check()
        if cfg is None:
            self.note.object = "Fix the fields marked ⚠ first."
            return
        running = JOBS.get(cfg.run_id)
        if running is not None and running.state() == "running":
            self.note.object = f"Run `{cfg.run_id}` is already training here."
            return
        start(self.root, self.preset.value, changed, cfg.run_id, self.llc.value)
        self.note.object = f"Started `{cfg.run_id}` ({cfg.num_epochs} epochs, {len(cfg.checkpoint_epochs)} checkpoints)."
        self.refresh()

    def refresh(self) -> None:
        for run_id, job in sorted(JOBS.items(), key=lambda kv: -kv[1].started):
            if job.root != self.root:
                continue
            if run_id not in self.rows:
                bar = pn.indicators.Progress(value=0, max=1000, width=200, margin=(12, 5))
                text = pn.pane.Markdown(width=620, css_classes=["job-status"])
                button = pn.widgets.Button(label="Open", width=70)
                button.on_click(lambda _, r=run_id: self.on_open(r))
                self.rows[run_id] = (bar, text, button)
                self.jobs.insert(0, pn.Row(pn.pane.Markdown(f"`{run_id}`", width=240), bar, button, text))
            bar, text, _ = self.rows[run_id]
            fraction, line = status(job)
            bar.value = int(1000 * fraction)
            tail = job.log_tail() if job.state().startswith("failed") else ""
            text.object = line + (f"\n```\n{tail}\n```" if tail else "")
