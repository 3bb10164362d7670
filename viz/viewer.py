"""The viewer's page: ``App`` (the run picker, a run's views, the Compare and Train pages) and
``page()``, the page a session is served (``viz/app.py``, the script ``panel serve`` runs).

These live in an ordinary module, not in the served script: Bokeh runs that script as a new
module for each session and clears the module's namespace when the session ends, so a page
built in one session and served in another (a spare page, ``viz.spare``) must not depend on
the namespace of the session it was built in.
"""

from __future__ import annotations

import holoviews as hv
import panel as pn
from bokeh.embed import file_html
from bokeh.resources import INLINE

from viz import data, spare
from viz.compare import Compare
from viz.run_view import RunView, message
from viz.train import TrainPage

if hv.Store.current_backend != "bokeh" or "bokeh" not in hv.Store.renderers:
    hv.extension("bokeh")  # once per process (~0.25 s)
pn.extension(sizing_mode="fixed", notifications=False)  # for pages built outside the served script too

REFRESH_MS = 2000
URL_MS = 400
PAGES = ("run", "compare", "train")


class App:
    """Run picker, the selected run's views, run comparison and the Train page."""

    def __init__(self, root: str | None = None, run: str | None = None, epoch: int | None = None,
                 neuron: int | None = None, view: str | None = None, page: str | None = None,
                 layer: int | None = None):
        self.root = root or data.runs_root()
        self._query: dict[str, str] = {}
        runs = data.runs(self.root)
        first = run if run in runs else (runs[-1] if runs else None)
        self.single = view
        self.run_select = pn.widgets.Select(label="Run", options=data.labelled_runs(self.root, runs), value=first,
                                            width=300)
        self.controls = pn.Column(width=320)
        self.main = pn.Column()
        self.view: RunView | None = None
        self.export_name = pn.widgets.Select(label="Export a view", width=190)
        self.export = pn.widgets.FileDownload(callback=self._export, filename="view.html", label="HTML",
                                              width=100, margin=(24, 5, 5, 5))
        self.show(first, epoch, neuron, layer)
        self.run_select.param.watch(lambda e: self.show(e.new), "value")
        side = pn.Column(self.run_select, self.controls, pn.Row(self.export_name, self.export), width=330)
        if view:
            self.layout = pn.Row(side, self.main)
            return
        self.compare: Compare | None = None  # built when first opened
        self.train: TrainPage | None = None
        header = pn.pane.Markdown("## Training Dynamics Workbench", margin=(0, 10))
        self.pages = pn.Tabs(pn.Row(side, self.main, name="Run"), pn.Column(name="Compare runs"),
                             pn.Column(name="Train"), dynamic=True)
        self.pages.param.watch(lambda _: self._open_page(), "active")
        self.pages.active = PAGES.index(page) if page in PAGES else 0
        self.layout = pn.Column(header, self.pages)

    def _open_page(self) -> None:
        """Build the Compare or Train page the first time it is opened."""
        if self.pages.active == 1 and self.compare is None:
            self.compare = Compare(self.root, self.run_select.value)
            self.pages[1].objects = [self.compare.panel]
        elif self.pages.active == 2 and self.train is None:
            self.train = TrainPage(self.root, on_open=self.open_run)
            self.pages[2].objects = [self.train.panel]

    def show(self, run_id: str | None, epoch: int | None = None, neuron: int | None = None,
             layer: int | None = None) -> None:
        if run_id is None:
            self.view = None
            self.controls[:] = []
            self._export_options()
            self.main[:] = [message(f"No runs under `{self.root}` yet. Train one on the Train page or with "
                                    "`tdw run --preset quick`; it appears here.")]
            return
        try:
            self.view = RunView(self.root, run_id, epoch, neuron, single=self.single, on_state=self._state,
                                on_fault=self._fault, layer=layer)
        except data.READ_ERRORS as exc:
            self.view = None
            self.controls[:] = []
            self._export_options()
            self.main[:] = [message(f"Run `{run_id}` cannot be shown yet: {exc}")]
            return
        self.controls[:] = self.view.controls()
        self.main[:] = [self.view.panel]
        self._announce()
        self._export_options()

    def _fault(self, exc: Exception, why: str | None = None) -> None:
        """The shown run can no longer be read (deleted, or its store damaged while open): a
        message in place of its views; the picker and the other pages keep working."""
        run_id = self.view.run_id if self.view is not None else self.run_select.value
        self.run_select.value = None  # so that picking any run, this one too, shows it
        self.view = None
        self.controls[:] = []
        self._export_options()
        data.forget()  # no stale handle or cached read survives (the run may be re-created)
        spare.discard()
        self.main[:] = [message(why or f"Run `{run_id}` can no longer be read: {exc}. Pick another run, "
                                "or this one again once its store is whole.")]

    def open_run(self, run_id: str) -> None:
        """Show ``run_id`` on the Run page (from the Train page's list)."""
        self.refresh()
        self.run_select.value = run_id
        self.pages.active = 0

    def _announce(self) -> None:
        """The shown run, epoch and neuron (and layer, for a run of several) into the page address."""
        v = self.view
        if v is not None:
            self._state(run=v.run_id, **({"epoch": v.epoch.value, "neuron": v.neuron.value} if v.epochs else {}),
                        **({"layer": v.layers.value} if v.layers.shown else {}))

    def _state(self, **query) -> None:
        """Put the shareable state into the page address (served sessions only), at most every
        ``URL_MS``: the address round trip stays out of a slider step's way."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None or pn.state.location is None:
            return
        pending = not self._query
        self._query.update({k: str(v) for k, v in query.items()})
        if pending:
            doc.add_timeout_callback(self._write_query, URL_MS)

    def _write_query(self) -> None:
        query, self._query = self._query, {}
        pn.state.location.update_query(**query)

    def _export_options(self) -> None:
        names = self.view.exportable() if self.view is not None else []
        self.export_name.options = names
        self.export_name.value = names[0] if names else None
        self.export.disabled = not names

    def _export(self):
        """The chosen view at the current epoch as a standalone HTML file (resources inline);
        each plot's toolbar also saves it as PNG."""
        from io import StringIO

        name, view = self.export_name.value, self.view
        epoch = view.epoch.value
        self.export.filename = f"{view.run_id}-{name}-epoch{epoch}.html"
        return StringIO(file_html(view.view(name).standalone(epoch), INLINE, f"{name} · {view.run_id} · epoch {epoch}"))

    def refresh(self) -> None:
        runs = data.runs(self.root)
        options = data.labelled_runs(self.root, runs)
        if options != self.run_select.options:
            gone = self.run_select.value if self.run_select.value not in (None, *runs) else None
            self.run_select.options = options
            if gone is not None:  # deleted or moved while shown: say so; any pick is then a change
                self._fault(None, f"Run `{gone}` is no longer under `{self.root}` (deleted or moved). "
                                  "Pick another run.")
            elif self.run_select.value is None and runs:
                self.run_select.value = runs[-1]
        if self.view is not None:
            try:
                if self.view.refresh():
                    self.controls[:] = self.view.controls()
                    self.main[:] = [self.view.panel]
                    self._export_options()
            except data.READ_ERRORS as exc:
                self._fault(exc)
        for page in (getattr(self, "compare", None), getattr(self, "train", None)):
            if page is not None:
                page.refresh()

    def servable(self) -> pn.viewable.Viewable:
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # a session (not `panel serve --warm`'s run)
            pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS)
            # the address, once the browser has the page (a change made before it connects is in
            # the document it receives, but the browser's address follows changes only)
            pn.state.onload(self._announce)
        return self.layout.servable(title="Training Dynamics Workbench")


def page(root: str | None = None, **address) -> App:
    """This session's page. For the Run page: the spare built for the same address while it is
    current (``viz.spare``), and once this page has loaded, a spare for the next visit."""
    root = root or data.runs_root()
    if address.get("page") not in (None, "run"):  # the other pages are cheap to build, and start work
        return App(root, **address)
    def stamp(runs: list[str]):  # what the page is built from: the runs, the run's analysed epochs and progress
        return (tuple(runs), tuple(data.analysed_epochs(root, shown)), data.trained_through(root, shown)) \
            if shown in runs else tuple(runs)

    try:
        runs = data.runs(root)
        shown = address.get("run") if address.get("run") in runs else (runs[-1] if runs else None)
        key = (root, shown, *(address.get(k) for k in ("epoch", "neuron", "view", "layer")))  # /app is /app?run=<last>
        app = spare.take(key, lambda: stamp(runs))
    except data.READ_ERRORS:  # the page says what is wrong
        return App(root, **address)
    app = app or App(root, **address)
    pn.state.onload(lambda: spare.prepare(key, lambda: stamp(data.runs(root)), lambda: App(root, **address)))
    return app

