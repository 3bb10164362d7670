"""The curated views of a run, declared in one table. A row names a view (its name is also the
page address's ``&view=<name>``), the tab it is laid out on, the store arrays it needs, a title
for the note shown when the run lacks them, and the function that draws it: ``draw(run_view,
name)`` -> an ``EpochView`` (refilled for each epoch) or a ``CurveView`` (over training), built
when its tab is first opened. A tab lays out, in table order, the views whose arrays the run's
store holds, and names the others in a one-line note each; the "Every analysis" tab draws any
stored variable by its dimensions (``viz.explore``).

Adding a view: a plot function (``viz.plots``, ``viz.progress``, ``viz.structure``...) and a
row here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from bokeh.palettes import Purples256

from viz import depth, llc, neurons, plots, progress, structure
from viz.generic import Bars, Heatmap
from viz.linked import CurveView

if TYPE_CHECKING:
    from viz.run_view import RunView

NEURONS, PROGRESS, WEIGHTS, EVERY = "Neurons and spectrum", "Progress measures", "Weights and attention", "Every analysis"
LAYERS = "Layers"
TABS = (NEURONS, PROGRESS, WEIGHTS, LAYERS, EVERY)


@dataclass(frozen=True)
class View:
    name: str
    tab: str
    needs: tuple[str, ...]  # store arrays (variables or coordinates) the view reads
    title: str  # names the view in the note shown when the run lacks what it needs
    draw: Callable[["RunView", str], Any]  # (run view, name) -> EpochView | CurveView
    per_layer: bool = False  # shows the layer picked (``viz.layers``) of the per-layer arrays it reads


def curve(fn: Callable[..., Any]) -> Callable[["RunView", str], CurveView]:
    """A view over training drawn by ``fn(root, run_id)`` (a HoloViews element), or, for a view
    shown per layer, ``fn(root, run_id, layer=l)``; a click on it jumps to the nearest analysed
    checkpoint."""
    return lambda rv, name: CurveView(name, lambda: fn(rv.root, rv.run_id, **rv.layer_kw(name)), on_tap=rv.jump)


def _spectrum(rv: "RunView", name: str) -> Bars:
    view = Bars(rv.root, rv.run_id, "embedding_spectrum", width=plots.WIDTH, height=plots.HEIGHT)
    view.figure.title.text = "Embedding Fourier spectrum ‖F W_E‖"
    return view


def _neuron_heatmap(rv: "RunView", name: str) -> Heatmap:
    return Heatmap(rv.root, rv.run_id, "neuron_activations", rv.epochs, index=rv.neuron.value,
                   mode=rv.colour.value, width=plots.SQUARE, height=plots.SQUARE)


def _neuron_grid(rv: "RunView", name: str) -> neurons.NeuronGrid:
    view = neurons.NeuronGrid(rv.root, rv.run_id, rv.epochs, on_pick=rv.pick, mode=rv.colour.value,
                              size=plots.SQUARE)
    view.set_neurons(*rv.grid_neurons(), None)
    return view


def _neuron_frequencies(rv: "RunView", name: str, variable: str = "neuron_freq_fraction",
                        title: str = "Neuron × frequency variance fraction", **kw) -> neurons.NeuronFrequencies:
    view = neurons.NeuronFrequencies(rv.root, rv.run_id, rv.pick, variable, title, width=plots.WIDTH,
                                     height=plots.SQUARE + 70, **kw)
    view.set_order(rv.order, rv.order_caption)
    view.mark(rv.neuron.value)
    return view


def _wl_spectrum(rv: "RunView", name: str) -> neurons.NeuronFrequencies:
    return _neuron_frequencies(rv, name, "wl_freq_norm", "W_L = W_out W_U Fourier spectrum per neuron",
                               normalise=True, palette=tuple(reversed(Purples256)))


def _specialised_share(rv: "RunView", name: str) -> CurveView:
    return CurveView(name, lambda: progress.specialised_share(rv.root, rv.run_id, rv.threshold.value,
                                                              **rv.layer_kw(name)), on_tap=rv.jump)


def _epoch_view(cls) -> Callable[["RunView", str], Any]:
    return lambda rv, name: cls(rv.root, rv.run_id)


VIEWS: tuple[View, ...] = (
    View("loss", NEURONS, ("train_loss", "test_loss"), "Loss", curve(plots.loss_curves)),
    View("accuracy", NEURONS, ("train_acc", "test_acc"), "Accuracy", curve(plots.accuracy_curves)),
    View("embedding_spectrum", NEURONS, ("embedding_spectrum", "component"), "Embedding Fourier spectrum",
         _spectrum),
    View("neuron_heatmap", NEURONS, ("neuron_activations",), "One neuron's activations", _neuron_heatmap, True),
    View("neuron_grid", NEURONS, ("neuron_activations",), "Neuron grid", _neuron_grid, True),
    View("neuron_frequencies", NEURONS, ("neuron_freq_fraction", "freq"), "Neuron × frequency variance fraction",
         _neuron_frequencies, True),
    View("spectrum_evolution", NEURONS, ("embedding_freq_norm", "freq"), "Embedding Fourier norm over training",
         curve(plots.spectrum_evolution)),
    View("progress_losses", PROGRESS, ("restricted_loss", "excluded_loss"), "Restricted and excluded loss",
         curve(progress.losses)),
    View("periodicity", PROGRESS, ("logit_periodicity",), "Logit periodicity", curve(progress.periodicity)),
    View("gini", PROGRESS, ("gini_embedding", "gini_wl"), "Fourier sparsity (Gini)", curve(progress.gini)),
    View("weight_norm", PROGRESS, ("sum_sq_weights_total",), "Sum of squared weights", curve(progress.weight_norm)),
    View("specialised_share", PROGRESS, ("neuron_freq_fraction",), "Specialised neurons", _specialised_share, True),
    View("llc", PROGRESS, llc.NEEDS, "Local learning coefficient (tdw analyze --llc)", curve(llc.over_training)),
    View("llc_traces", PROGRESS, llc.Traces.needs, "LLC chains at this checkpoint", _epoch_view(llc.Traces)),
    View("attention", WEIGHTS, structure.Attention.needs, "Attention from '=' per head", _epoch_view(structure.Attention),
         True),
    View("class_accuracy", WEIGHTS, structure.ClassAccuracy.needs, "Accuracy per residue class",
         _epoch_view(structure.ClassAccuracy)),
    View("wl_spectrum", WEIGHTS, ("wl_freq_norm", "freq"), "W_L = W_out W_U Fourier spectrum per neuron", _wl_spectrum,
         True),
    View("participation", WEIGHTS, ("participation_ratio",), "Effective dimensionality",
         curve(structure.participation), True),
    View("weight_norms", WEIGHTS, ("sum_sq_weights",), "Sum of squared weights per matrix",
         curve(structure.weight_norms)),
    View("residual_shares", LAYERS, ("resid_freq_share", "site", "freq"), "Residual stream frequency share per layer",
         curve(depth.residual_shares)),
    View("logit_attribution", LAYERS, ("logit_attribution", "logit_attribution_embed", "correct_logit", "site"),
         "Direct logit attribution per layer", curve(depth.logit_attribution)),
    View("logit_lens_accuracy", LAYERS, ("logit_lens_accuracy", "split"), "Logit lens accuracy per layer",
         curve(depth.logit_lens)),
    View("logit_lens_loss", LAYERS, ("logit_lens_loss", "split"), "Logit lens loss per layer",
         curve(depth.logit_lens_loss)),
)
BY_NAME = {v.name: v for v in VIEWS}
