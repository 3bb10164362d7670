"""Self-describing safetensors checkpoints, written atomically (temp file, then rename).

``epoch_XXXXX.safetensors`` holds the model's ``state_dict`` with the run config and the epoch
in its header metadata, so a checkpoint alone rebuilds its model. ``state/latest.safetensors``
holds what exact resume also needs: the AdamW moments and step count at that epoch. Only
safetensors are ever loaded (never pickle).
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tasks.config import RunConfig

FORMAT = "tdw-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not belong to the run."""


def _atomic_save(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.partial"
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_partials(folder: str) -> list[str]:
    """Delete the temporary files a killed writer left in ``folder``; returns their names."""
    if not os.path.isdir(folder):
        return []
    stale = [f for f in os.listdir(folder) if f.endswith(".partial")]
    for name in stale:
        os.remove(os.path.join(folder, name))
    return stale


def save_checkpoint(path: str, model: torch.nn.Module, cfg: RunConfig, epoch: int) -> None:
    meta = {"format": FORMAT, "epoch": str(epoch), "run_id": cfg.run_id, "config": cfg.to_json()}
    _atomic_save(model.state_dict(), path, meta)


def _open(path: str, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.endswith(".safetensors"):
        raise CheckpointError(f"refusing to load {path}: only .safetensors checkpoints are read")
    try:
        # opening checks the header and that the file covers every tensor (truncation)
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a workbench checkpoint")
    return tensors, meta


def read_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)``; raises :class:`CheckpointError` naming the file if corrupt."""
    return _open(path, with_tensors=True)


def load_into(model: torch.nn.Module, path: str, cfg: RunConfig, epoch: int) -> None:
    """Load ``path`` into ``model`` after checking it belongs to ``cfg``'s run at ``epoch``."""
    tensors, meta = read_checkpoint(path)
    if meta.get("run_id") != cfg.run_id or int(meta.get("epoch", -1)) != epoch:
        raise CheckpointError(
            f"checkpoint {path} is run {meta.get('run_id')} epoch {meta.get('epoch')}, "
            f"expected run {cfg.run_id} epoch {epoch}"
        )
    model.load_state_dict(tensors)


def save_train_state(path: str, optimizer: torch.optim.Optimizer, names: list[str], epoch: int) -> None:
    """AdamW moments per trainable parameter (``names`` in optimiser order) at ``epoch``."""
    tensors, steps = {}, set()
    params = optimizer.param_groups[0]["params"]
    for name, param in zip(names, params, strict=True):
        st = optimizer.state.get(param, {})
        if st:
            tensors[f"{name}.exp_avg"] = st["exp_avg"]
            tensors[f"{name}.exp_avg_sq"] = st["exp_avg_sq"]
            steps.add(float(st["step"]))
    meta = {"format": FORMAT, "epoch": str(epoch), "step": str(steps.pop() if steps else 0.0)}
    _atomic_save(tensors, path, meta)


def load_train_state(path: str, optimizer: torch.optim.Optimizer, names: list[str]) -> int:
    """Restore the optimiser from ``path``; returns the epoch it belongs to."""
    tensors, meta = read_checkpoint(path)
    step = float(meta["step"])
    params = optimizer.param_groups[0]["params"]
    for name, param in zip(names, params, strict=True):
        if f"{name}.exp_avg" in tensors:
            optimizer.state[param] = {
                "step": torch.tensor(step),
                "exp_avg": tensors[f"{name}.exp_avg"].to(param.device),
                "exp_avg_sq": tensors[f"{name}.exp_avg_sq"].to(param.device),
            }
    return int(meta["epoch"])


def checkpoint_metadata(path: str) -> dict:
    """The header of a checkpoint: ``{"epoch": int, "config": RunConfig, ...}`` (reads no tensors)."""
    _, meta = _open(path, with_tensors=False)
    return {"epoch": int(meta["epoch"]), "run_id": meta["run_id"],
            "config": RunConfig.from_dict(json.loads(meta["config"]))}
