"""The "Every analysis" tab: any per-checkpoint variable in the store, picked by name and drawn
by the shape of its dimensions (``viz.generic``), so an analysis added to the analysis table is
shown here as soon as a run stores it. A variable with a ``layer`` dimension followed by others
is shown at the layer picked on the run page (``viz.layers``); a lone ``(epoch, layer)`` is one
curve per layer."""

from __future__ import annotations

from typing import Callable

import panel as pn

from viz import data, generic
from viz.layers import LayerPicker
from viz.linked import CurveView, EpochView


class Explore:
    def __init__(self, root: str, run_id: str, epochs: list[int], jump: Callable[[float], None],
                 current: Callable[[], int], layers: LayerPicker):
        self.root, self.run_id, self.epochs, self.jump, self.current = root, run_id, epochs, jump, current
        self.layers = layers
        self.variables = data.per_epoch_variables(root, run_id)
        options = {f"{attrs['analysis']} · {name}": name for name, attrs in self.variables.items()}
        self.select = pn.widgets.Select(label="Variable", options=options, width=360)
        self.index = pn.widgets.IntInput(label="Item", start=0, value=0, width=110, visible=False)
        self.about = pn.pane.Markdown(width=560)
        self.area = pn.Column()
        self.view: EpochView | CurveView | None = None
        self.select.param.watch(lambda e: self.pick(e.new), "value")
        self.index.param.watch(lambda e: self.view.set(self.current(), index=e.new), "value")
        self.panel = pn.Column(pn.Row(self.select, self.index), self.about, self.area)
        if not options:
            self.area[:] = [pn.pane.Alert("This run's store holds no analysed variables yet.", alert_type="info")]

    def ensure(self) -> None:
        """Build the selected variable's view the first time the tab is shown."""
        if self.view is None and self.select.value is not None:
            self.pick(self.select.value)

    def make(self, name: str) -> EpochView | CurveView | None:
        """The view of variable ``name`` (None if the store does not hold it)."""
        if name not in self.variables:
            return None
        how = generic.kind(self.root, self.run_id, name)
        if how == "curves":
            return CurveView(name, lambda: generic.over_training(self.root, self.run_id, name, self._layer()),
                             on_tap=self.jump)
        view = generic.Bars(self.root, self.run_id, name) if how == "bars" else \
            generic.Heatmap(self.root, self.run_id, name, self.epochs, index=0, width=380, height=340)
        if view.per_layer and self.layers.shown:
            view.set_layer(self.layers.value)
        return view

    def _layer(self) -> int | None:
        """The layer picked, where the run has several (None: layer 0, unnamed)."""
        return self.layers.value if self.layers.shown else None

    def follow_layer(self, view: EpochView | CurveView) -> None:
        """Show the layer picked on the run page in ``view`` (made here) where it is per layer."""
        if isinstance(view, CurveView) and generic.shown_dims(self.root, self.run_id, view.name)[0]:
            view.redraw()
        elif getattr(view, "per_layer", False) and self.layers.shown:
            view.set_layer(self.layers.value)
            view.show(self.current())

    def pick(self, name: str) -> None:
        attrs = self.variables[name]
        dims = attrs["dims"]
        self.about.object = (f"**{name}** ({', '.join(dims)}), analysis `{attrs['analysis']}`: "
                             f"{attrs.get('description', '')}" + (f" · hook `{attrs['hook']}`" if attrs.get("hook") else ""))
        self.view = self.make(name)
        indexed = isinstance(self.view, generic.Heatmap) and self.view.idim is not None
        self.index.visible = indexed
        if indexed:
            self.index.param.update(label=self.view.idim, end=data.store(self.root, self.run_id).sizes()[self.view.idim] - 1,
                                    value=0)
        self.view.show(self.current())
        self.area[:] = [self.view.pane()]
