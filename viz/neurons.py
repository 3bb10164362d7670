"""The neuron views: a grid of neurons' (a, b) maps tiled into one image, and the neuron ×
frequency variance fractions with neurons sortable by dominant frequency so that frequency
clusters show as blocks. Choosing neurons (top-k by variance, a frequency cluster, an order)
is plain numpy on stored values; a click on either view picks a neuron."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from bokeh.events import Tap
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, Range1d, Span
from bokeh.palettes import Blues256, Viridis256
from bokeh.plotting import figure

from viz import data
from viz.generic import COLOUR_MODES, colours, to_rgba, update_mapper
from viz.linked import TOOLBAR, TOOLS, EpochView

ORDERS = ("dominant frequency (last epoch)", "dominant frequency (this epoch)", "neuron index")


def clusters(root: str, run_id: str, epoch: int, threshold: float, layer: int = 0) -> dict[int, list[int]]:
    """Frequency k -> the neurons of ``layer`` with more than ``threshold`` of their variance in
    k at ``epoch``, strongest first."""
    frac = data.layer_slice(root, run_id, "neuron_freq_fraction", epoch, layer)  # (neuron, freq)
    freqs = data.coord(root, run_id, "freq")
    strength, dominant = frac.max(axis=1), frac.argmax(axis=1)
    out: dict[int, list[int]] = {}
    for n in np.argsort(-strength, kind="stable"):
        if strength[n] > threshold:
            out.setdefault(int(freqs[dominant[n]]), []).append(int(n))
    return dict(sorted(out.items()))


def order(root: str, run_id: str, epoch: int, by: str, layer: int = 0) -> np.ndarray:
    """The neurons of ``layer`` in display order: by dominant frequency at ``epoch`` (strongest
    first within a frequency; silent neurons, whose fractions are all zero, last), or by index."""
    frac = data.layer_slice(root, run_id, "neuron_freq_fraction", epoch, layer)
    if by == ORDERS[2]:
        return np.arange(len(frac))
    strength = frac.max(axis=1)
    dominant = np.where(strength > 0, frac.argmax(axis=1), frac.shape[1])
    return np.lexsort((-strength, dominant))


def mosaic(maps: np.ndarray, gap: int) -> np.ndarray:
    """Tile ``(k, n, n)`` maps (n operand values: p, or p - 1 for a discrete-log basis) into one
    float32 image, first map at the top left, operand position 0 at the bottom of each tile;
    gaps are NaN."""
    k, p = len(maps), maps.shape[1]
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    image = np.full((rows * (p + gap) - gap, cols * (p + gap) - gap), np.nan, dtype=np.float32)
    for i in range(k):
        r, c = divmod(i, cols)
        top, left = (rows - 1 - r) * (p + gap), c * (p + gap)
        image[top:top + p, left:left + p] = maps[i]
    return image


def neuron_at_pixels(neurons: tuple[int, ...], p: int, gap: int) -> np.ndarray:
    """The neuron each pixel of the neurons' mosaic shows (-1 in gaps), int32: the hover's."""
    tiled = mosaic(np.broadcast_to(np.asarray(neurons, np.float32)[:, None, None], (len(neurons), p, p)), gap)
    return np.where(np.isnan(tiled), -1, tiled).astype(np.int32)


@data.derived(maxsize=16)
def grid_frame(root: str, run_id: str, epoch: int, neurons: tuple[int, ...], gap: int, mode: str,
               epochs: tuple[int, ...], layer: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """The neuron grid of ``layer`` at ``epoch``: ``(image, rgba, colours)``, the tiled values,
    their colours and the colour range and palette. The range is the image's own, or, fixed, each neuron's over
    ``epochs``. Computed once per process for all the sessions showing it (~3 ms at p = 113 for
    16 neurons; the recent 16 are kept, ~1.8 MB each). Read-only: a source given them is refilled
    whole, never patched in place."""
    image = mosaic(data.neuron_maps(root, run_id, epoch, neurons, layer), gap)
    if mode == COLOUR_MODES[0]:
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
    else:
        at = data.at_layer(root, run_id, "neuron_activations", layer)
        ranges = [data.value_range(root, run_id, "neuron_activations", epochs, *at, n) for n in neurons]
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    palette = colours(low, high, mode)
    rgba = to_rgba(image, **palette)
    for array in (image, rgba):
        array.flags.writeable = False  # shared between sessions
    return image, rgba, palette


class NeuronGrid(EpochView):
    """Several neurons' (a, b) maps as one image with one shared colour range; a click on a
    tile calls ``on_pick(neuron)``, hover names the tile's neuron. The image travels as its
    colours alone (``viz.generic.to_rgba``; the values stay here, ``image``): the biggest
    image of the page, a quarter of a megapixel at p = 113, so neither its values nor the
    browser's colouring of them weigh on every step."""

    name = "neuron_grid"

    def __init__(self, root: str, run_id: str, epochs: list[int], on_pick: Callable[[int], None],
                 mode: str = COLOUR_MODES[0], size: int = 380):
        self.root, self.run_id, self.epochs, self.mode, self.on_pick = root, run_id, list(epochs), mode, on_pick
        self.p = data.store(root, run_id).sizes()["a"]
        self.gap = max(1, self.p // 12)
        self.neurons: tuple[int, ...] = ()
        self._ids: tuple[int, ...] | None = None
        self.image = np.zeros((1, 1), np.float32)  # the values drawn last, tiled as ``mosaic`` tiles them
        self.source = ColumnDataSource({"rgba": [np.zeros((1, 1), np.uint32)], "neuron": [np.zeros((1, 1), np.int32)]})
        self.mapper = LinearColorMapper(palette=Viridis256, low=0, high=1, nan_color="white")  # the colour bar's
        fig = figure(frame_width=size, frame_height=size, tools=TOOLS, toolbar_location=TOOLBAR,
                     x_range=Range1d(0, 1), y_range=Range1d(0, 1))
        self.glyph = fig.image_rgba(image="rgba", x=0, y=0, dw=1, dh=1, source=self.source)
        fig.add_layout(ColorBar(color_mapper=self.mapper, width=10, padding=3), "right")
        fig.add_tools(HoverTool(tooltips=[("neuron", "@neuron")], renderers=[self.glyph]))
        fig.axis.visible = False
        fig.grid.visible = False
        fig.on_event(Tap, self._tap)
        self.figure = fig

    def set_neurons(self, neurons: tuple[int, ...], caption: str, epoch: int | None) -> None:
        """Show these neurons (tiles in this order) and redraw ``epoch`` (if given)."""
        self.neurons = tuple(int(n) for n in neurons)
        self.cols = max(1, math.ceil(math.sqrt(len(self.neurons))))
        rows = max(1, math.ceil(len(self.neurons) / self.cols))
        h, w = rows * (self.p + self.gap) - self.gap, self.cols * (self.p + self.gap) - self.gap
        self.glyph.glyph.update(dw=w, dh=h)
        self.figure.x_range.update(start=0, end=w)
        self.figure.y_range.update(start=0, end=h)
        self.figure.frame_height = round(self.figure.frame_width * h / w)  # square tiles
        self.figure.title.text = caption + (f" · layer {self.layer}" if self.layer is not None else "")
        if epoch is not None:
            self.show(epoch)

    def clone(self) -> "NeuronGrid":
        view = NeuronGrid(self.root, self.run_id, self.epochs, lambda n: None, self.mode, self.figure.frame_width)
        view.set_neurons(self.neurons, self.figure.title.text, None)
        return view

    def load(self, epoch: int) -> int:
        """The maps' read (what the read-ahead warms); the frame is made on ``draw``."""
        data.neuron_maps(self.root, self.run_id, epoch, self.neurons, self.layer or 0)
        return epoch

    def draw(self, epoch: int) -> None:
        fixed = tuple(self.epochs) if self.mode != COLOUR_MODES[0] else ()  # the range's epochs
        self.image, rgba, palette = grid_frame(self.root, self.run_id, epoch, self.neurons, self.gap,
                                               self.mode, fixed, self.layer or 0)
        columns = {"rgba": [rgba]}
        if self._ids != self.neurons:  # the hover's neuron ids travel only when the neurons change
            columns["neuron"] = [neuron_at_pixels(self.neurons, self.p, self.gap)]
            self._ids = self.neurons
        self.source.data.update(**columns)
        update_mapper(self.mapper, **palette)

    def neuron_at(self, x: float, y: float) -> int | None:
        """The neuron drawn at data point (x, y), or None in a gap or outside."""
        size = self.p + self.gap
        rows = math.ceil(len(self.neurons) / self.cols)
        c, r_from_bottom = int(x // size), int(y // size)
        if x < 0 or y < 0 or x % size >= self.p or y % size >= self.p or c >= self.cols or r_from_bottom >= rows:
            return None
        i = (rows - 1 - r_from_bottom) * self.cols + c
        return self.neurons[i] if i < len(self.neurons) else None

    def _tap(self, event) -> None:
        neuron = self.neuron_at(event.x, event.y)
        if neuron is not None:
            self.on_pick(neuron)


class NeuronFrequencies(EpochView):
    """A (neuron, freq) variable as an image, one row per neuron in ``order`` (top to bottom),
    frequencies k along x: by default the variance fractions, coloured from 0 to this epoch's
    largest fraction (the colour bar's top: ~1 where neurons specialise; a dense spectrum's
    fractions of a few percent stay visible, not near-white); with ``normalise`` each row is
    divided by its maximum (colour 0..1). Hover names neuron, k and value; the picked neuron's
    row is marked; a click on a row calls ``on_pick(neuron)``."""

    name = "neuron_frequencies"

    def __init__(self, root: str, run_id: str, on_pick: Callable[[int], None], variable: str = "neuron_freq_fraction",
                 title: str = "Neuron × frequency variance fraction", normalise: bool = False,
                 palette=tuple(reversed(Blues256)), width: int = 560, height: int = 360):
        self.root, self.run_id, self.on_pick = root, run_id, on_pick
        self.variable, self.normalise, self.palette = variable, normalise, palette
        freqs = data.coord(root, run_id, "freq")
        n = data.store(root, run_id).sizes()["neuron"]
        self.order = np.arange(n)
        self._ids_sent = False
        self.source = ColumnDataSource({"image": [np.zeros((n, len(freqs)), np.float32)],
                                        "neuron": [np.zeros((n, len(freqs)), np.int32)]})
        self.mapper = mapper = LinearColorMapper(palette=list(palette), low=0, high=1)
        k0 = float(freqs[0]) - 0.5
        fig = figure(width=width, height=height, tools=TOOLS, toolbar_location=TOOLBAR,
                     x_range=Range1d(k0, k0 + len(freqs)), y_range=Range1d(n - 0.5, -0.5), title=title)
        glyph = fig.image(image="image", x=k0, y=-0.5, dw=len(freqs), dh=n, source=self.source, color_mapper=mapper)
        fig.add_layout(ColorBar(color_mapper=mapper, width=10, padding=3), "right")
        value = "relative norm" if normalise else "fraction"
        fig.add_tools(HoverTool(tooltips=[("neuron", "@neuron"), ("frequency k", "$x{0}"), (value, "@image{0.000}")],
                                renderers=[glyph]))
        self.selected = Span(location=-10, dimension="width", line_color="#d62728", line_width=1.5, line_alpha=0.8)
        fig.add_layout(self.selected)
        fig.xaxis.axis_label = f"frequency k · {data.task(root, run_id).basis}"
        fig.yaxis.axis_label = "neuron (in the chosen order)"
        fig.grid.visible = False
        fig.on_event(Tap, self._tap)
        self.figure = fig

    def clone(self) -> "NeuronFrequencies":
        fig = self.figure
        view = NeuronFrequencies(self.root, self.run_id, lambda n: None, self.variable, fig.title.text,
                                 self.normalise, self.palette, fig.width, fig.height)
        view.set_order(self.order, fig.yaxis[0].axis_label)
        view.selected.location = self.selected.location
        return view

    def set_order(self, neurons: np.ndarray, caption: str) -> None:
        self.order = np.asarray(neurons)
        self._ids_sent = False
        self.figure.yaxis.axis_label = caption

    def load(self, epoch: int) -> np.ndarray:
        return data.layer_slice(self.root, self.run_id, self.variable, epoch, self.layer or 0)

    def draw(self, values: np.ndarray) -> None:
        rows = np.asarray(values[self.order], dtype=np.float32)
        if self.normalise:
            rows = rows / np.maximum(rows.max(axis=1, keepdims=True), 1e-12)
        else:
            top = float(np.nanmax(rows)) if rows.size and not np.isnan(rows).all() else 1.0
            self.mapper.high = max(top, 1e-6)
        columns = {"image": [rows]}
        if not self._ids_sent:  # the hover's neuron ids travel only when the order changes
            columns["neuron"] = [np.ascontiguousarray(np.broadcast_to(self.order[:, None].astype(np.int32), rows.shape))]
            self._ids_sent = True
        self.source.data.update(**columns)

    def mark(self, neuron: int) -> None:
        self.selected.location = int(np.flatnonzero(self.order == neuron)[0])

    def _tap(self, event) -> None:
        rank = int(round(event.y))
        if 0 <= rank < len(self.order):
            self.on_pick(int(self.order[rank]))
