"""The viewer: ``panel serve viz/app.py`` (runs root from ``$TDW_RUNS``, default ``./runs``).

Pages: **Run** (one run's views, driven by one epoch slider: ``viz.run_view``), **Compare
runs** (``viz.compare``) and **Train** (``viz.train``). The page address holds the state to
share: ``/app?run=<run id>&epoch=<epoch>&neuron=<n>`` (and ``&layer=<l>`` for a run of several
layers); ``&view=<name>`` shows one view alone (a view of the Run page, or any stored
variable); ``&page=compare|train`` opens that page.
A periodic refresh picks up new runs, checkpoints and training progress.

This script only serves the page: what it is made of is in ``viz.viewer``.
"""

from __future__ import annotations

import panel as pn

from viz.viewer import page  # also loads HoloViews' Bokeh backend, once per process

pn.extension(sizing_mode="fixed", notifications=False)  # in the served script, as Panel asks


def _arg(name: str, kind=str):
    """A value from the page address (``/app?run=...&epoch=...``), or None."""
    values = pn.state.session_args.get(name) or [b""]
    try:
        return kind(values[0].decode()) if values[0] else None
    except ValueError:
        return None


if __name__.startswith("bokeh"):
    page(run=_arg("run"), epoch=_arg("epoch", int), neuron=_arg("neuron", int), view=_arg("view"),
         page=_arg("page"), layer=_arg("layer", int)).servable()
