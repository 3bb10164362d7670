"""Draw a HoloViews overlay of curves straight into a Bokeh figure. The views over training are
defined once, as HoloViews elements (``viz.plots``, ``viz.progress``, ``viz.structure``; the
report renders them through HoloViews); for the viewer, whose page load counts, this draws
the simple ones (``Curve``, ``Scatter``, ``HLine``, ``VLine``, with their options: size,
title, log scale, limits, colours, legend) about ten times faster than ``hv.render``. Anything
else goes through ``hv.render``."""

from __future__ import annotations

import holoviews as hv
import numpy as np
from bokeh.document import Document
from bokeh.models import HoverTool, Range1d, Span
from bokeh.plotting import figure

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"  # save: the plot as PNG; a click is heard without a tool
TOOLBAR = "right"  # beside the plot (above, it covered the title), shown while the pointer is on it (``lean``)
# HoloViews' legend positions outside the plot -> where Bokeh lays them out (above or below: in one row)
LEGEND_OUTSIDE = {"right": "right", "left": "left", "top": "above", "bottom": "below"}
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def _opts(element, group: str) -> dict:
    return element.opts.get(group).kwargs


def render(element: hv.Element):
    """A Bokeh figure of ``element`` (canvas backend)."""
    items = list(element) if isinstance(element, hv.Overlay) else [element]
    if not all(isinstance(e, (hv.Curve, hv.Scatter, hv.HLine, hv.VLine)) for e in items):
        # a document of its own, not Bokeh's current one (shared by all threads: a spare page
        # is built beside live sessions, viz.spare); the figure joins the page's document later
        fig = hv.renderer("bokeh").get_plot(element, doc=Document()).state
        fig.output_backend = "canvas"  # HoloViews asks for WebGL: far slower without a GPU
        return fig
    plot = {}
    for e in (*items, element):  # the overlay's own options win
        plot.update(_opts(e, "plot"))
    logy = bool(plot.get("logy"))
    data = [e for e in items if isinstance(e, (hv.Curve, hv.Scatter))]
    fig = figure(width=plot.get("width", 480), height=plot.get("height", 260), tools=TOOLS,
                 toolbar_location=TOOLBAR, y_axis_type="log" if logy else "linear",
                 title=plot.get("title", ""), output_backend="canvas")
    shown_legend = plot.get("show_legend", True)
    for i, e in enumerate(data):
        style = _opts(e, "style")
        color = style.get("color") if isinstance(style.get("color"), str) else COLORS[i % len(COLORS)]
        x, y = e.dimension_values(0), e.dimension_values(1).astype(float)
        if logy:
            keep = y > 0
            x, y = x[keep], y[keep]
        legend = {"legend_label": e.label} if e.label and shown_legend else {}
        if isinstance(e, hv.Curve):
            fig.line(x, y, color=color, line_width=style.get("line_width", 1.5),
                     line_dash=style.get("line_dash", "solid"), **legend)
        else:
            fig.scatter(x, y, color=color, size=style.get("size", 4),
                        marker=style.get("marker", "circle"), **legend)
    for e in items:
        if isinstance(e, (hv.HLine, hv.VLine)):
            style = _opts(e, "style")
            fig.add_layout(Span(location=float(e.data), dimension="width" if isinstance(e, hv.HLine) else "height",
                                line_color=style.get("color", "#bbbbbb"), line_width=style.get("line_width", 1)))
    if data:
        xlabel, ylabel = data[0].kdims[0].pprint_label, data[0].vdims[0].pprint_label
        fig.xaxis.axis_label, fig.yaxis.axis_label = xlabel, ylabel
        fig.add_tools(HoverTool(tooltips=[(xlabel, "@x{0}"), (ylabel, "@y{0.0000g}")]))
    if plot.get("ylim") and all(v is not None and np.isfinite(v) for v in plot["ylim"]):
        fig.y_range = Range1d(*plot["ylim"])
    if fig.legend:
        position = plot.get("legend_position", "top_right")
        fig.legend.click_policy = "mute"
        if position in LEGEND_OUTSIDE:
            legend = fig.legend[0]
            fig.center.remove(legend)
            fig.add_layout(legend, LEGEND_OUTSIDE[position])
            if position in ("top", "bottom"):
                legend.update(orientation="horizontal", padding=2, margin=0, spacing=12)
        else:
            fig.legend.location = position
    return fig

