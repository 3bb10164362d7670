"""The run page's layer picker: which layer of a deeper model the per-layer views show. A view
of the table (``viz.views``) declared per layer shows the picked layer of the arrays it reads
that have a ``layer`` dimension (``viz.data.layered``). A 1-layer run, or a store written
before that dimension existed, shows no picker and its views are drawn as they always were
(layer 0, unnamed). The picked layer is in the page address (``&layer=``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import panel as pn

from viz import data
from viz.linked import CurveView, EpochView

if TYPE_CHECKING:
    from viz.run_view import RunView
    from viz.views import View


class LayerPicker:
    """The picker (``widget``, visible only for more than one layer) and what it drives."""

    def __init__(self, root: str, run_id: str, layer: int | None = None):
        self.root, self.run_id = root, run_id
        self.n = data.n_layers(root, run_id)
        start = layer if layer is not None and 0 <= layer < self.n else self.n - 1  # default: the last, next to the logits
        self.widget = pn.widgets.Select(label="Layer", options={f"layer {i}": i for i in range(self.n)}, value=start,
                                        width=300, visible=self.n > 1)

    @property
    def value(self) -> int:
        return int(self.widget.value)

    @property
    def shown(self) -> bool:
        """Whether the run has layers to pick from (and per-layer views name theirs)."""
        return self.n > 1

    def per_layer(self, row: "View") -> bool:
        """Whether the table's view ``row`` shows the picked layer here: it is declared per layer
        and one of the arrays it reads has a ``layer`` dimension in this run's store."""
        st = data.store(self.root, self.run_id)
        return self.shown and row.per_layer and any(
            st.has(name) and data.layered(self.root, self.run_id, name) for name in row.needs)

    def kw(self, row: "View") -> dict:
        """``{"layer": l}`` for the plot function of a view shown per layer, else nothing (layer
        0, unnamed)."""
        return {"layer": self.value} if self.per_layer(row) else {}

    def drive(self, rv: "RunView") -> None:
        """Show the picked layer in every view of ``rv`` shown per layer, in one batch: epoch
        views refilled in place, curves redrawn (a hidden tab's when next shown), the neuron
        order, clusters and grid taken from that layer; the layer goes into the address."""
        layer, epoch = self.value, rv.epoch.value
        if not rv.epochs:  # nothing drawn yet: the views are built at this layer
            return
        with pn.io.hold():
            rv._grid_options()
            rv._set_order(show=False)
            visible = rv._visible()
            for name, view in rv.views.items():
                if name not in rv.rows:  # a stored variable shown alone (the address's ``view=``)
                    rv._explore().follow_layer(view)
                elif not self.per_layer(rv.rows[name]):
                    continue
                elif isinstance(view, CurveView):
                    view.redraw() if name in visible else rv.stale.add(name)
                else:
                    view.set_layer(layer)
            if rv.explore is not None and rv.explore.view is not None:
                rv.explore.follow_layer(rv.explore.view)
            rv._set_grid()
            for name in visible:
                if isinstance(rv._view(name), EpochView):
                    rv._view(name).show(epoch)
            rv._show_key_text()
            rv.on_state(layer=layer)
        rv._prefetch(epoch)
