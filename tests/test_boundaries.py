"""Import boundaries keep the tree honest: Zarr only in store/; Prefect only in flows/, the
task shells and, inside the functions that start work, the command line (cli/; importing it
imports no Prefect: tests/test_cli.py); torch and TransformerLens never in viz/."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(*folders: str):
    for folder in folders:
        yield from (ROOT / folder).rglob("*.py")


def test_zarr_only_in_store():
    for path in _sources("cli", "flows", "tasks", "viz"):
        assert "zarr" not in _imports(path), path


def test_problems_are_plain_numpy():
    """The task registry is read by the store, the command line and the viewer's fallbacks."""
    for path in _sources("tasks/problems"):
        assert not _imports(path) & {"torch", "transformer_lens", "zarr", "prefect"}, path


def test_prefect_only_in_flows_and_task_shells():
    for path in _sources("tasks", "store", "viz"):
        if path.name != "steps.py":
            assert "prefect" not in _imports(path), path


def test_viewer_never_imports_torch():
    for path in _sources("viz", "store"):
        assert not _imports(path) & {"torch", "transformer_lens"}, path


@pytest.mark.slow  # a fresh interpreter
def test_viewer_process_stays_light():
    import subprocess
    import sys

    code = "import sys; import viz.plots, viz.data; print(any(m in sys.modules for m in ('torch', 'transformer_lens', 'prefect')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
