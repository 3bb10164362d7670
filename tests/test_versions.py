"""Analysis versions cover the code each analysis reaches: a changed helper marks exactly the
analyses that depend on it stale."""

import importlib
import inspect
import sys
import textwrap

import pytest

from tasks import data
from tasks.analyses import ANALYSES, BY_NAME, fourier, reach
from tasks.analyses.probe import Probe
from tasks.problems import multiplicative
from tasks.problems.basis import Basis

GRID = {"neuron_activations", "neuron_frequencies", "attention", "residual_frequencies"}
SPECTRA = {"embedding_spectrum", "neuron_frequencies", "weight_measures", "attention", "residual_frequencies"}
SCORED = {"accuracy", "progress_measures", "logit_lens", "logit_lens_progress"}  # read the labels and split


@pytest.fixture
def fresh_digests():
    reach.code_digest.cache_clear()
    yield
    reach.code_digest.cache_clear()  # nothing computed under a patch outlives the test


def _versions() -> dict[str, str]:
    return {a.name: a.version([1, 2]) for a in ANALYSES}


@pytest.mark.parametrize("helper, dependents", [
    (inspect.unwrap(fourier.basis_matrix), SPECTRA),
    (fourier.by_frequency, SPECTRA),
    (data.labels, SCORED | {"logit_attribution"}),
    (data.split, SCORED),
    (data.operand_grid, GRID),
    (Probe.on_grid, GRID),
    (Probe.weights.func, {a.name for a in ANALYSES} - {"llc"}),  # the forward reads the weights' device; llc samples probe.model
    (fourier.per_frequency, {"embedding_spectrum", "weight_measures"}),
])
def test_a_changed_helper_marks_exactly_its_dependents_stale(monkeypatch, fresh_digests, helper, dependents):
    before = _versions()
    source = reach._source
    reach.code_digest.cache_clear()
    monkeypatch.setattr(reach, "_source", lambda obj: source(obj) + ("# edited\n" if obj is helper else ""))
    after = _versions()
    assert {name for name in before if before[name] != after[name]} == dependents


FOURIER = {"embedding_spectrum", "neuron_frequencies", "weight_measures", "attention", "progress_measures"}


@pytest.mark.parametrize("helper", [Basis.matrix.func, Basis.position, inspect.unwrap(multiplicative.primitive_root)])
def test_a_changed_basis_or_task_marks_the_fourier_analyses_stale(monkeypatch, fresh_digests, helper):
    """The task registry's code (the bases in tasks/problems/basis.py, the discrete logs) is in
    every analysis that reads the task: a change there recomputes at least every Fourier one."""
    before = _versions()
    source = reach._source
    reach.code_digest.cache_clear()
    monkeypatch.setattr(reach, "_source", lambda obj: source(obj) + ("# edited\n" if obj is helper else ""))
    after = _versions()
    assert FOURIER <= {name for name in before if before[name] != after[name]}


def test_versions_cover_parameters_and_key_frequencies_and_are_cached(fresh_digests):
    progress = BY_NAME["progress_measures"]
    assert progress.version([1, 2]) != progress.version([1, 3])
    assert BY_NAME["accuracy"].version([1, 2]) == BY_NAME["accuracy"].version([1, 3])
    for _ in range(3):
        _versions()
    assert reach.code_digest.cache_info().misses == len(ANALYSES)  # each computed once


def test_no_analysis_is_a_lambda():
    for a in ANALYSES:
        assert a.fn.__name__ == a.name and "<" not in a.fn.__qualname__, a.name


def _package(root, helpers: str) -> dict:
    """A package ``synth`` (helpers.py as given, rows.py using it) imported afresh; returns
    what each row reaches."""
    pkg = root / "synth"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text(textwrap.dedent(helpers))
    (pkg / "rows.py").write_text(textwrap.dedent("""
        from synth import helpers
        from synth.helpers import Box, other

        def row_a(x):
            return helpers.base(x)

        def row_b(x):
            return sorted(map(lambda v: other(v), [x]))  # a lambda and a name imported alone

        def row_c(box: Box):
            return box.value()
        """))
    for name in ("synth", "synth.helpers", "synth.rows"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    rows = importlib.import_module("synth.rows")
    return {name: reach.reach(getattr(rows, name), roots=("synth",)) for name in ("row_a", "row_b", "row_c")}


HELPERS = """
    SCALE = 2

    def base(x):
        return x * SCALE

    def other(x):
        return -x

    class Box:
        def value(self):
            return self._inner()

        def _inner(self):
            return 1

        def unused(self):
            return base(0)
    """


@pytest.mark.parametrize("old, new, changed", [
    ("SCALE = 2", "SCALE = 3", {"row_a"}),  # a constant the helper reads
    ("return -x", "return -x + 0", {"row_b"}),  # a helper called from a lambda
    ("return 1", "return 1 + 0", {"row_c"}),  # a method reached through the annotated argument
    ("return base(0)", "return base(1)", set()),  # a member no row uses
])
def test_a_synthetic_package_marks_exactly_the_rows_that_reach_the_change(tmp_path, monkeypatch, old, new, changed):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    before = _package(tmp_path, HELPERS)
    after = _package(tmp_path, HELPERS.replace(old, new))
    assert {row for row in before if before[row] != after[row]} == changed
    assert list(before["row_c"]) == ["synth.helpers:Box._inner", "synth.helpers:Box.value", "synth.rows:row_c"]
    for name in ("synth", "synth.helpers", "synth.rows"):
        sys.modules.pop(name, None)


def _rows(root, helpers: str, rows: str, names: tuple[str, ...]) -> dict:
    pkg = root / "synth2"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text(textwrap.dedent(helpers))
    (pkg / "rows.py").write_text(textwrap.dedent(rows))
    for name in ("synth2", "synth2.helpers", "synth2.rows"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    module = importlib.import_module("synth2.rows")
    found = {name: reach.reach(getattr(module, name), roots=("synth2",)) for name in names}
    for name in ("synth2", "synth2.helpers", "synth2.rows"):
        sys.modules.pop(name, None)
    return found


TABLE_HELPERS = """
    import functools

    def one():
        return 1

    def two():
        return 2

    TABLE = {"one": lambda: one(), "two": lambda: two()}  # two lambdas, one qualname
    SHIFTED = functools.partial(two)  # data that is neither a constant nor project code
    """
TABLE_ROWS = """
    from synth2 import helpers

    def row_table():
        return helpers.TABLE["two"]()

    def row_partial():
        return helpers.SHIFTED()
    """


@pytest.mark.parametrize("old, new", [("return 2", "return 2 + 0"), ("return 1", "return 1 + 0")])
def test_every_lambda_of_a_table_and_data_a_module_holds_are_in_the_version(tmp_path, monkeypatch, old, new):
    """Lambdas share the qualname ``<lambda>`` (their line tells them apart), and a partial or an
    array in a project module has no source of its own: the module's text stands for it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    names = ("row_table", "row_partial")
    before = _rows(tmp_path, TABLE_HELPERS, TABLE_ROWS, names)
    after = _rows(tmp_path, TABLE_HELPERS.replace(old, new), TABLE_ROWS, names)
    assert {row for row in names if before[row] != after[row]} == set(names)
    assert sum("<lambda>" in key for key in before["row_table"]) == 2
