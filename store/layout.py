"""The only place that builds paths. A runs root holds one folder per run:

    <root>/<run_id>/config.json
    <root>/<run_id>/checkpoints/epoch_00100.safetensors
    <root>/<run_id>/state/latest.safetensors
    <root>/<run_id>/state/epoch_00500.safetensors
    <root>/<run_id>/store.zarr/

The root is a local folder or an fsspec URL (``s3://bucket/prefix``); ``store.files`` does the
file access for both.
"""

from __future__ import annotations

import os
import re

from store import files

DEFAULT_ROOT = "runs"
ENV_ROOT = "TDW_RUNS"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class LayoutError(ValueError):
    """A run id or path that is not allowed (e.g. one that would leave the runs root)."""


def runs_root(root: str | os.PathLike | None = None) -> str:
    """The runs root: the argument, else ``$TDW_RUNS``, else ``./runs`` (a folder or a URL)."""
    return files.local(os.fspath(root) if root else os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def absolute(root: str) -> str:
    """An absolute local path, or the URL unchanged."""
    return root if files.is_url(root) else os.path.abspath(files.local(root))


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise LayoutError(f"invalid run id {run_id!r} (letters, digits, '.', '_', '-' only)")
    return run_id


def run_dir(root: str, run_id: str) -> str:
    return os.path.join(root, check_run_id(run_id))


def config_path(root: str, run_id: str) -> str:
    return os.path.join(run_dir(root, run_id), "config.json")


def checkpoint_dir(root: str, run_id: str) -> str:
    return os.path.join(run_dir(root, run_id), "checkpoints")


def checkpoint_path(root: str, run_id: str, epoch: int) -> str:
    return os.path.join(checkpoint_dir(root, run_id), f"epoch_{epoch:05d}.safetensors")


def train_state_path(root: str, run_id: str) -> str:
    return os.path.join(state_dir(root, run_id), "latest.safetensors")


def state_dir(root: str, run_id: str) -> str:
    return os.path.join(run_dir(root, run_id), "state")


def state_path(root: str, run_id: str, epoch: int) -> str:
    """The saved training state (weights and AdamW moments) at ``epoch``, for replay."""
    return os.path.join(state_dir(root, run_id), f"epoch_{epoch:05d}.safetensors")


def state_epochs(root: str, run_id: str) -> list[int]:
    """The epochs with a saved training state, sorted (none for a run without states)."""
    folder = state_dir(root, run_id)
    if not files.isdir(folder):
        return []
    found = (re.fullmatch(r"epoch_(\d+)\.safetensors", name) for name in files.listdir(folder))
    return sorted(int(m.group(1)) for m in found if m)


def store_path(root: str, run_id: str) -> str:
    return os.path.join(run_dir(root, run_id), "store.zarr")


def list_run_ids(root: str) -> list[str]:
    """Run folders under ``root`` that hold a config, sorted."""
    return sorted(
        name for name in files.listdir(root)
        if _RUN_ID.match(name) and files.isfile(config_path(root, name))
    )
