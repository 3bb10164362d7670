"""Views derived from the store alone. Every per-checkpoint variable an analysis writes carries
its dimension names and labels in the store (``tasks/analyses``'s table declares them), so its
view follows from the shape of its dimensions and a new analysis is shown without touching the
viewer:

- ``(epoch,)`` or ``(epoch, X)`` with at most ``SMALL`` labels: curves over training;
- ``(epoch, X)`` with more labels: bars over X at the current epoch (``Bars``; X labelled with
  a Fourier basis, ``const, cos 1, sin 1, ...``, is laid out by frequency k);
- ``(epoch, Y, X)``: an image at the current epoch, Y up the vertical axis (``Heatmap``);
- ``(epoch, I, Y, X)``: the same for one I at a time (``Heatmap`` with an ``index``).

A ``layer`` dimension after ``epoch`` is shown one layer at a time (the run page's layer picker)
when more dimensions follow it, and the rest of the dimensions decide as above; a lone
``(epoch, layer)`` is one curve per layer.
"""

from __future__ import annotations

import functools
import math

import holoviews as hv
import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, FactorRange, HoverTool, LinearColorMapper, Range1d
from bokeh.palettes import RdBu11, Viridis256
from bokeh.plotting import figure

from viz import data
from viz.linked import TOOLBAR, TOOLS, EpochView

SMALL = 12
NAN_RGBA = np.uint32(0xFFFFFFFF)  # white
COLOUR_MODES = ("this epoch", "fixed over training", "symmetric about 0")
DIVERGING = list(reversed(RdBu11))  # negative blue, zero white, positive red
FOURIER_SHIFT = {"cos": -0.2, "sin": 0.2}  # a frequency's two bars, either side of k
FOURIER_COLORS = {"const": "#7f7f7f", "cos": "#4c72b0", "sin": "#dd8452"}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#637939"]


def labels(root: str, run_id: str, dim: str) -> list[str]:
    """The labels of a dimension: its coordinate array in the store, else 0 .. n-1 (``layer l``
    for the layers)."""
    if data.has(root, run_id, dim):
        names = [str(v) for v in data.coord(root, run_id, dim)]
    else:
        names = [str(i) for i in range(data.store(root, run_id).sizes()[dim])]
    return [f"layer {n}" for n in names] if dim == "layer" else names


def shown_dims(root: str, run_id: str, name: str) -> tuple[bool, tuple[str, ...]]:
    """``(per_layer, dims)``: whether the variable is shown one layer at a time (a ``layer``
    dimension after ``epoch`` with more dimensions after it), and the dimensions drawn (those
    after ``epoch``, and after ``layer`` when per layer)."""
    dims = tuple(data.describe(root, run_id, name)["dims"][1:])
    per_layer = len(dims) > 1 and dims[0] == "layer"
    return per_layer, dims[1:] if per_layer else dims


def fourier_positions(labels) -> tuple[np.ndarray, np.ndarray] | None:
    """Where a Fourier basis's rows go on a frequency axis: ``const`` at 0, ``cos k`` at
    k - 0.2 and ``sin k`` at k + 0.2; with each row's kind (``const``, ``cos``, ``sin``).
    None when the labels are not all of that form."""
    x, kinds = [], []
    for label in map(str, labels):
        kind_, _, k = label.partition(" ")
        if label == "const":
            x.append(0.0)
        elif kind_ in FOURIER_SHIFT and k.isdigit():
            x.append(int(k) + FOURIER_SHIFT[kind_])
        else:
            return None
        kinds.append(kind_)
    return np.array(x), np.array(kinds)


def frequency_ticks(k_max: int) -> list[int]:
    """Ticks on a frequency axis 0..``k_max``: every 5, or every 10 beyond k = 30."""
    step = 5 if k_max <= 30 else 10
    return list(range(0, k_max + 1, step))


def kind(root: str, run_id: str, name: str) -> str:
    """``curves``, ``bars`` or ``heatmap``: how the variable is drawn (see the module doc)."""
    dims = shown_dims(root, run_id, name)[1]
    if not dims or (len(dims) == 1 and data.store(root, run_id).sizes()[dims[0]] <= SMALL):
        return "curves"
    return "bars" if len(dims) == 1 else "heatmap"


def title(root: str, run_id: str, name: str) -> str:
    return str(data.describe(root, run_id, name).get("long_name") or name)


def over_training(root: str, run_id: str, name: str, layer: int | None = None) -> hv.Overlay:
    """One curve per label over the analysed checkpoints (at ``layer`` where the variable is
    shown per layer, named in the title; None: layer 0, unnamed), log scale when the values are
    positive and span more than two decades."""
    per_layer, dims = shown_dims(root, run_id, name)
    epochs, values = data.measure(root, run_id, name, (layer or 0) if per_layer else None)
    values = values.reshape(len(epochs), -1) if len(epochs) else np.zeros((0, 1))
    names = labels(root, run_id, dims[0]) if dims else [""]
    finite = values[np.isfinite(values)]
    logy = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 100)
    curves = [hv.Curve((epochs, values[:, i]), "epoch", title(root, run_id, name), label=label)
              .opts(color=COLORS[i % len(COLORS)]) for i, label in enumerate(names)]
    return hv.Overlay(curves).opts(
        hv.opts.Curve(width=480, height=260, tools=["hover"], line_width=1.8, logy=logy),
        hv.opts.Overlay(title=f"{title(root, run_id, name)} ({name})" + (f" · layer {layer}" if per_layer and layer is not None else ""),
                        legend_position="right",
                        show_legend=len(curves) > 1, logy=logy),
    )


def update_mapper(mapper: LinearColorMapper, low: float, high: float, palette) -> None:
    """Set a colour mapper's range, and its palette only when it changes (checking a
    256-colour palette costs more than the rest of a step)."""
    mapper.update(low=low, high=high)
    if palette is not mapper.palette and list(palette) != list(mapper.palette):
        mapper.palette = palette


@functools.lru_cache(maxsize=16)
def _lut(palette: tuple[str, ...]) -> np.ndarray:
    """``#rrggbb`` colours as the uint32 an ``image_rgba`` glyph reads (bytes R, G, B, A)."""
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in palette], dtype=np.uint32)
    return rgb[:, 0] | rgb[:, 1] << 8 | rgb[:, 2] << 16 | np.uint32(255) << 24


def colours(low: float, high: float, mode: str, palette=Viridis256) -> dict:
    """The colour mapper's settings for values ``low .. high`` in colour ``mode``: symmetric about
    zero on the diverging palette, else ``low .. high`` (at least 1e-6 wide) on ``palette``."""
    if mode == COLOUR_MODES[2]:
        m = max(abs(low), abs(high))
        return {"low": -m, "high": m, "palette": DIVERGING}
    return {"low": low, "high": high if high > low else low + 1e-6, "palette": palette}


def to_rgba(values: np.ndarray, low: float, high: float, palette) -> np.ndarray:
    """``values`` (ny, nx) coloured as Bokeh's ``LinearColorMapper`` colours them (palette
    entry ⌊(v - low) / (high - low) · n⌋, clipped to the palette; NaN white), packed as the
    uint32 RGBA an ``image_rgba`` glyph draws: for an image big enough that colouring it pixel
    by pixel in the browser on every step costs more than sending its colours (the neuron
    grid: 229k pixels at p = 113, ~35 ms of a browser's step)."""
    lut = _lut(tuple(palette))
    scale = len(lut) / (high - low) if high > low else 0.0
    with np.errstate(invalid="ignore"):
        index = np.clip(np.nan_to_num((np.asarray(values, dtype=np.float64) - low) * scale, nan=0.0),
                        0, len(lut) - 1).astype(np.intp)
    return np.where(np.isnan(values), NAN_RGBA, lut[index]).astype(np.uint32)


class Bars(EpochView):
    """``(epoch, X)``: bars over the labels of X at the current epoch; the hover names each.
    A Fourier basis (``fourier_positions``) is drawn along a frequency axis, cos k and sin k
    side by side at k in two colours; other labels each get a slot."""

    def __init__(self, root: str, run_id: str, name: str, width: int = 560, height: int = 260,
                 color: str = "#4c72b0"):
        self.root, self.run_id, self.name, self.color = root, run_id, name, color
        self.per_layer, (dim,) = shown_dims(root, run_id, name)
        self.labels = labels(root, run_id, dim)
        fourier = fourier_positions(self.labels)
        columns = {"x": self.labels, "value": np.zeros(len(self.labels))}
        if fourier is not None:
            x, kinds = fourier
            columns.update(pos=x, color=[FOURIER_COLORS[k] for k in kinds])
        self.source = ColumnDataSource(columns)
        fig = figure(x_range=FactorRange(*self.labels) if fourier is None else Range1d(-0.7, x.max() + 0.7),
                     width=width, height=height, tools=TOOLS, toolbar_location=TOOLBAR,
                     title=f"{title(root, run_id, name)} ({name})")
        fig.add_tools(HoverTool(tooltips=[(dim, "@x"), ("value", "@value{0.0000}")]))
        if fourier is None:
            fig.vbar(x="x", top="value", width=0.8, source=self.source, color=color, line_color=None)
            fig.xaxis.major_label_orientation = math.pi / 2
            fig.xaxis.axis_label = dim
            if len(self.labels) > 70:  # unreadable when dense: hover names each bar
                fig.xaxis.major_label_text_font_size = "0pt"
                fig.xaxis.axis_label = f"{dim} (hover for labels)"
        else:
            fig.vbar(x="pos", top="value", width=0.4, source=self.source, color="color", line_color=None)
            fig.xaxis.ticker = frequency_ticks(int(x.max()))
            fig.xaxis.axis_label = f"frequency k · {data.task(root, run_id).basis}"
        fig.xgrid.grid_line_color = None
        # the y range follows the bars in the browser: nothing here reads it back (else every
        # step would send its new ends to the server, one more message to handle per step)
        fig.y_range.syncable = False
        self.figure = fig

    def clone(self) -> "Bars":
        return Bars(self.root, self.run_id, self.name, self.figure.width, self.figure.height, self.color)

    def load(self, epoch: int) -> np.ndarray:
        at = (self.layer or 0,) if self.per_layer else ()
        return data.epoch_slice(self.root, self.run_id, self.name, epoch, *at)

    def draw(self, values: np.ndarray) -> None:
        self.source.data.update(value=np.nan_to_num(np.asarray(values, dtype=np.float64)))


class Heatmap(EpochView):
    """``(epoch, [I,] Y, X)``: the (Y, X) image at the current epoch (of item ``index`` along I),
    Y = 0 at the bottom, with a colour range per ``mode`` (``COLOUR_MODES``): this epoch's
    range, the range over every analysed epoch (so epochs are comparable), or that range made
    symmetric about zero with a diverging palette."""

    def __init__(self, root: str, run_id: str, name: str, epochs: list[int], index: int | None = None,
                 mode: str = COLOUR_MODES[0], width: int = 280, height: int = 280, palette=Viridis256):
        """``width``, ``height``: of the image area, in pixels."""
        self.root, self.run_id, self.name = root, run_id, name
        self.epochs, self.index, self.mode, self.palette = list(epochs), index, mode, palette
        self.per_layer, dims = shown_dims(root, run_id, name)
        self.idim, (self.ydim, self.xdim) = (dims[0] if len(dims) == 3 else None), dims[-2:]
        sizes = data.store(root, run_id).sizes()
        ny, nx = sizes[self.ydim], sizes[self.xdim]
        self.source = ColumnDataSource({"image": [np.zeros((ny, nx), dtype=np.float32)]})
        self.mapper = LinearColorMapper(palette=palette, low=0, high=1, nan_color="white")
        fig = figure(frame_width=width, frame_height=height, tools=TOOLS, toolbar_location=TOOLBAR,
                     x_range=Range1d(-0.5, nx - 0.5), y_range=Range1d(-0.5, ny - 0.5), title=self._title())
        fig.image(image="image", x=-0.5, y=-0.5, dw=nx, dh=ny, source=self.source, color_mapper=self.mapper)
        fig.add_layout(ColorBar(color_mapper=self.mapper, width=10, padding=3), "right")
        task = data.task(root, run_id)
        fig.add_tools(HoverTool(tooltips=[(task.hover(self.xdim), "$x{0}"), (task.hover(self.ydim), "$y{0}"),
                                          ("value", "@image{0.000}")]))
        fig.xaxis.axis_label, fig.yaxis.axis_label = task.operand(self.xdim), task.operand(self.ydim)
        for axis, dim, n in ((fig.xaxis, self.xdim, nx), (fig.yaxis, self.ydim, ny)):
            names = labels(root, run_id, dim)
            if n <= SMALL and names != [str(i) for i in range(n)]:
                axis.ticker = list(range(n))
                axis.major_label_overrides = dict(enumerate(names))
        fig.grid.visible = False
        self.figure = fig

    def _title(self) -> str:
        item = f" · {self.idim} {self.index}" if self.idim else ""
        layer = f" · layer {self.layer}" if self.layer is not None else ""
        return f"{title(self.root, self.run_id, self.name)}{item}{layer}"

    def clone(self) -> "Heatmap":
        return Heatmap(self.root, self.run_id, self.name, self.epochs, self.index, self.mode,
                       self.figure.frame_width, self.figure.frame_height, self.palette)

    def _slice(self) -> tuple:
        """The index after the epoch: the layer (when per layer), then the item (when indexed)."""
        return ((self.layer or 0,) if self.per_layer else ()) + (() if self.idim is None else (int(self.index or 0),))

    def load(self, epoch: int) -> np.ndarray:
        return data.epoch_slice(self.root, self.run_id, self.name, epoch, *self._slice())

    def draw(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame, dtype=np.float32)
        self.source.data.update(image=[frame])
        update_mapper(self.mapper, **self.colour_range(frame))

    def colour_range(self, frame: np.ndarray) -> dict:
        if self.mode == COLOUR_MODES[0]:
            finite = frame[np.isfinite(frame)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        else:
            low, high = data.value_range(self.root, self.run_id, self.name, tuple(self.epochs), *self._slice())
        return colours(low, high, self.mode, self.palette)

    def set(self, epoch: int, index: int | None = None, mode: str | None = None) -> None:
        """Show another item or colour mode (a neuron picked, a range mode chosen)."""
        if index is not None and index != self.index:
            self.index = index
            self.figure.title.text = self._title()
        self.mode = mode or self.mode
        self.show(epoch)
