"""The viewer: ``panel serve viz/app.py`` (runs root from ``$TDW_RUNS``, default ``./runs``).

One epoch ``DiscreteSlider`` drives every per-epoch view; each view is a ``DynamicMap`` bound
to the slider, so scrubbing patches data in place (zoom survives). A run still training or
being analysed gains epochs in the slider as they are done, without moving the current one.
"""

from __future__ import annotations

import holoviews as hv
import panel as pn
import param

from viz import data, plots, progress, structure

hv.extension("bokeh")
pn.extension(sizing_mode="fixed", notifications=False)

REFRESH_MS = 2000
LEGENDS = {"gini": "bottom_right", "progress_losses": "right", "weight_norms": "right"}


def _message(text: str) -> pn.pane.Alert:
    return pn.pane.Alert(text, alert_type="info", width=600)


class RunView(param.Parameterized):
    """Every view of one run, driven by one epoch slider."""

    trained_through = param.Integer(default=-1, doc="last epoch whose series are stored")

    def __init__(self, root: str, run_id: str, **params):
        super().__init__(**params)
        self.root, self.run_id = root, run_id
        self.epochs = data.analysed_epochs(root, run_id)
        self.trained_through = int(data.store(root, run_id).attrs.get("trained_through", -1))
        cfg = data.config(root, run_id)
        self.epoch = pn.widgets.DiscreteSlider(label="Epoch", options=self.epochs or [0],
                                               value=(self.epochs or [0])[-1], width=300)
        d_mlp = cfg["model"]["d_mlp"]
        self.neuron = pn.widgets.IntInput(label="Neuron", start=0, end=d_mlp - 1, value=0, width=120)
        self.threshold = pn.widgets.FloatSlider(label="Specialised neuron threshold", start=0.5, end=0.99,
                                                step=0.01, value=0.85, width=300)
        self.info = pn.pane.Markdown(self._info(cfg), width=300)
        self.panel = self._build() if self.epochs else _message(
            f"Run `{run_id}` has no analysed checkpoints yet; they appear here as they are done.")

    def _info(self, cfg: dict) -> str:
        return (f"**p** {cfg['p']} · **frac** {cfg['frac_train']} · **lr** {cfg['lr']} · "
                f"**wd** {cfg['weight_decay']}  \n**seeds** model {cfg['seed']}, data {cfg['data_seed']} · "
                f"**epochs** {self.trained_through + 1}/{cfg['num_epochs']} · "
                f"**analysed** {len(self.epochs)}/{len(cfg['checkpoint_epochs'])}")

    def _build(self) -> pn.viewable.Viewable:
        root, run_id, epoch = self.root, self.run_id, self.epoch.param.value
        grid = tuple(int(n) for n in plots.grid_neurons(root, run_id, self.epochs))
        order = tuple(int(n) for n in plots.neuron_order(root, run_id, self.epochs))
        self.neuron.value = grid[0]
        marker = hv.DynamicMap(pn.bind(plots.epoch_marker, epoch=epoch))
        loss = hv.DynamicMap(pn.bind(plots.loss_curves, root, run_id,
                                     trained_through=self.param.trained_through)) * marker
        acc = hv.DynamicMap(pn.bind(plots.accuracy_curves, root, run_id,
                                    trained_through=self.param.trained_through)) * marker
        self.views = {
            "loss": loss,
            "accuracy": acc,
            "embedding_spectrum": hv.DynamicMap(pn.bind(plots.embedding_spectrum, root, run_id, epoch)),
            "neuron_heatmap": hv.DynamicMap(pn.bind(plots.neuron_heatmap, root, run_id, epoch,
                                                    self.neuron.param.value)),
            "neuron_grid": hv.DynamicMap(pn.bind(plots.neuron_grid, root, run_id, epoch, grid)),
            "neuron_frequencies": hv.DynamicMap(pn.bind(plots.neuron_frequencies, root, run_id, epoch, order)),
        }
        live = {"trained_through": self.param.trained_through}
        for name, fn in (("progress_losses", progress.losses), ("gini", progress.gini),
                         ("weight_norm", progress.weight_norm), ("periodicity", progress.periodicity)):
            self.views[name] = (hv.DynamicMap(pn.bind(fn, root, run_id, **live)) * marker).opts(
                hv.opts.Overlay(legend_position=LEGENDS.get(name, "top_right")))
        self.views["specialised_share"] = hv.DynamicMap(pn.bind(
            progress.specialised_share, root, run_id, self.threshold.param.value, **live)) * marker
        for name, fn in (("participation", structure.participation), ("weight_norms", structure.weight_norms)):
            self.views[name] = (hv.DynamicMap(pn.bind(fn, root, run_id, **live)) * marker).opts(
                hv.opts.Overlay(legend_position=LEGENDS.get(name, "top_right")))
        self.views["class_accuracy"] = hv.DynamicMap(pn.bind(structure.class_accuracy, root, run_id, epoch))
        self.views["attention"] = hv.DynamicMap(pn.bind(structure.attention, root, run_id, epoch))
        self.views["wl_spectrum"] = hv.DynamicMap(pn.bind(structure.wl_spectrum, root, run_id, epoch, order))
        self.key_text = pn.pane.Markdown(pn.bind(progress.key_frequency_text, root, run_id,
                                                 self.threshold.param.value, epoch), width=860)
        pane = {name: pn.pane.HoloViews(view, name=name, linked_axes=False) for name, view in self.views.items()}
        main = pn.Column(
            pn.Row(pn.Column(pane["loss"], pane["accuracy"]), pane["embedding_spectrum"]),
            pn.Row(pane["neuron_heatmap"], pane["neuron_grid"]),
            pane["neuron_frequencies"],
            name="Neurons and spectrum",
        )
        measures = pn.Column(
            self.key_text,
            pn.Row(pane["progress_losses"], pane["periodicity"]),
            pn.Row(pane["gini"], pane["weight_norm"]),
            pane["specialised_share"],
            name="Progress measures",
        )
        weights = pn.Column(
            pn.Row(pane["attention"], pane["class_accuracy"]),
            pn.Row(pane["wl_spectrum"], pn.Column(pane["participation"], pane["weight_norms"])),
            name="Weights and attention",
        )
        return pn.Tabs(main, measures, weights, dynamic=True)  # only the visible tab renders and updates

    def refresh(self) -> None:
        """Pick up new analysed epochs and series of a live run; the current epoch stays."""
        epochs = data.analysed_epochs(self.root, self.run_id)
        trained = int(data.store(self.root, self.run_id).attrs.get("trained_through", -1))
        if epochs != self.epochs and epochs:
            had_none = not self.epochs
            self.epochs = epochs
            current = self.epoch.value
            self.epoch.options = epochs
            self.epoch.value = current if current in epochs and not had_none else epochs[-1]
            if had_none:
                self.panel = self._build()
        if trained != self.trained_through:
            self.trained_through = trained
        self.info.object = self._info(data.config(self.root, self.run_id))


class App:
    """Run picker + the selected run's views."""

    def __init__(self, root: str | None = None, run: str | None = None):
        self.root = root or data.runs_root()
        runs = data.runs(self.root)
        first = run if run in runs else (runs[-1] if runs else None)
        self.run_select = pn.widgets.Select(label="Run", options=runs, value=first, width=300)
        self.controls = pn.Column(width=320)
        self.main = pn.Column()
        self.view: RunView | None = None
        self.run_select.param.watch(lambda e: self.show(e.new), "value")
        self.show(self.run_select.value)
        header = pn.pane.Markdown("## Training Dynamics Workbench", margin=(0, 10))
        self.layout = pn.Row(pn.Column(header, self.run_select, self.controls, width=330), self.main)

    def show(self, run_id: str | None) -> None:
        if run_id is None:
            self.view = None
            self.controls[:] = []
            self.main[:] = [_message(f"No runs under `{self.root}` yet. Train one with "
                                     "`tdw run --preset quick`; it appears here.")]
            return
        try:
            self.view = RunView(self.root, run_id)
        except (data.StoreError, KeyError, OSError) as exc:
            self.view = None
            self.controls[:] = []
            self.main[:] = [_message(f"Run `{run_id}` cannot be shown yet: {exc}")]
            return
        self.controls[:] = [self.view.epoch, self.view.neuron, self.view.threshold, self.view.info]
        self.main[:] = [self.view.panel]

    def refresh(self) -> None:
        runs = data.runs(self.root)
        if runs != list(self.run_select.options):
            self.run_select.options = runs
            if self.run_select.value is None and runs:
                self.run_select.value = runs[-1]
        if self.view is not None:
            had = bool(self.view.epochs)
            try:
                self.view.refresh()
            except (data.StoreError, KeyError, OSError):
                return
            if not had and self.view.epochs:
                self.main[:] = [self.view.panel]

    def servable(self) -> pn.viewable.Viewable:
        pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS)
        return self.layout.servable(title="Training Dynamics Workbench")


def _requested_run() -> str | None:
    """The run named in the page address (``/app?run=<run_id>``), if any."""
    values = pn.state.session_args.get("run") or [b""]
    return values[0].decode() or None


if __name__.startswith("bokeh"):
    App(run=_requested_run()).servable()
