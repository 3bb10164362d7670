"""Self-describing safetensors checkpoints, written atomically (temp file, then rename; under
an object-store root, one PUT).

``epoch_XXXXX.safetensors`` holds the model's ``state_dict`` with the run config and the epoch
in its header metadata, so a checkpoint alone rebuilds its model. ``state/latest.safetensors``
holds what exact resume also needs: the AdamW moments and step count at that epoch.
``state/epoch_XXXXX.safetensors`` (every ``state_every`` epochs) holds the weights and the
moments together, so training can be replayed from it (``tdw zoom``). Only
safetensors are ever loaded (never pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save, save_file

from store import files
from tasks.config import RunConfig

FORMAT = "tdw-checkpoint/1"
FAULT_WRITE_DELAY = "TDW_FAULT_WRITE_DELAY"  # seconds between writing a file and renaming it (tests)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not belong to the run."""


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes: catches silent corruption
    (a flipped bit) that the safetensors header cannot."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _atomic_save(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    metadata = {**metadata, "sha256": digest(tensors)}
    if files.is_url(path):  # object store: serialise in memory, one PUT (atomic by itself)
        files.write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                                     metadata=metadata))
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.partial"
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    if os.environ.get(FAULT_WRITE_DELAY):  # fault injection: hold the write open (tests kill here)
        time.sleep(float(os.environ[FAULT_WRITE_DELAY]))
    os.replace(tmp, path)


def remove_partials(folder: str) -> list[str]:
    """Delete the temporary files a killed writer left in ``folder``; returns their names."""
    if files.is_url(folder) or not os.path.isdir(folder):  # object stores leave no partial files
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
    if files.is_url(path):
        return _open_remote(path, with_tensors)
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


def _open_remote(path: str, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``_open`` for a URL: the whole object for the tensors, or only its header (an 8-byte
    little-endian length, then JSON) by ranged reads. Checks, as ``safe_open`` does, that the
    object covers every tensor the header names."""
    try:
        data = files.read_bytes(path) if with_tensors else files.read_bytes(path, 0, 8)
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n] if with_tensors else files.read_bytes(path, 8, 8 + n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        length = len(data) if with_tensors else files.size(path)
        if length < 8 + n + max(ends, default=0):
            raise ValueError("truncated: the object is shorter than its header says")
        tensors = load(data) if with_tensors else {}
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc})") from exc
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a workbench checkpoint")
    return tensors, meta


def read_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)``; raises :class:`CheckpointError` naming the file if it is
    truncated, unreadable or its tensors do not match the checksum in its header."""
    tensors, meta = _open(path, with_tensors=True)
    if "sha256" in meta and digest(tensors) != meta["sha256"]:
        raise CheckpointError(f"checkpoint {path} is corrupt (its tensors do not match their checksum)")
    return tensors, meta


def load_into(model: torch.nn.Module, path: str, cfg: RunConfig, epoch: int) -> None:
    """Load ``path`` into ``model`` after checking it belongs to ``cfg``'s run at ``epoch``."""
    tensors, meta = read_checkpoint(path)
    if meta.get("run_id") != cfg.run_id or int(meta.get("epoch", -1)) != epoch:
        raise CheckpointError(
            f"checkpoint {path} is run {meta.get('run_id')} epoch {meta.get('epoch')}, "
            f"expected run {cfg.run_id} epoch {epoch}"
        )
    model.load_state_dict(tensors)


def _moments(optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[dict[str, torch.Tensor], float]:
    """The AdamW moments per trainable parameter (``names`` in optimiser order) and the step."""
    tensors, steps = {}, set()
    params = optimizer.param_groups[0]["params"]
    for name, param in zip(names, params, strict=True):
        st = optimizer.state.get(param, {})
        if st:
            tensors[f"{name}.exp_avg"] = st["exp_avg"]
            tensors[f"{name}.exp_avg_sq"] = st["exp_avg_sq"]
            steps.add(float(st["step"]))
    return tensors, steps.pop() if steps else 0.0


def save_train_state(path: str, optimizer: torch.optim.Optimizer, names: list[str], epoch: int,
                     matmul: str = "torch") -> None:
    """AdamW moments per trainable parameter (``names`` in optimiser order) at ``epoch``, and
    the products the run was trained with (``matmul``: ``tasks.onednn.choice``)."""
    tensors, step = _moments(optimizer, names)
    _atomic_save(tensors, path, {"format": FORMAT, "epoch": str(epoch), "step": str(step), "matmul": matmul})


def where(model: torch.nn.Module) -> str:
    """Where ``model``'s steps run, as far as bit-identity goes: the device (a GPU by its name)
    and torch's thread count, e.g. ``"cpu, 1 thread"``."""
    dev = next(model.parameters()).device
    name = f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else dev.type
    threads = torch.get_num_threads()
    return f"{name}, {threads} thread{'s' * (threads != 1)}"


def save_state(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, names: list[str],
               cfg: RunConfig, epoch: int, matmul: str, compiled: bool) -> None:
    """Everything a replay from ``epoch`` needs in one file: the model's ``state_dict`` (as
    ``model.<name>``), the AdamW moments, how the steps were computed (the products and whether
    the loss was compiled) and where (:func:`where`)."""
    tensors, step = _moments(optimizer, names)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    _atomic_save(tensors, path, {"format": FORMAT, "epoch": str(epoch), "step": str(step), "matmul": matmul,
                                 "compiled": str(int(compiled)), "run_id": cfg.run_id, "where": where(model)})


def load_state(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, names: list[str],
               cfg: RunConfig) -> dict:
    """Restore a :func:`save_state` file into ``model`` and ``optimizer``; returns ``{"epoch",
    "matmul", "compiled", "where"}`` (``where`` None for a state saved before it was recorded).
    Raises :class:`CheckpointError` if it is damaged or another run's."""
    tensors, meta = read_checkpoint(path)
    if meta.get("run_id") != cfg.run_id:
        raise CheckpointError(f"state {path} is run {meta.get('run_id')}, expected run {cfg.run_id}")
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    _restore(optimizer, names, tensors, float(meta["step"]))
    return {"epoch": int(meta["epoch"]), "matmul": meta["matmul"], "compiled": meta["compiled"] == "1",
            "where": meta.get("where")}


def load_train_state(path: str, optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[int, str]:
    """Restore the optimiser from ``path``; returns the epoch it belongs to and the products the
    run was trained with (``"torch"`` for a state saved before they were recorded)."""
    tensors, meta = read_checkpoint(path)
    _restore(optimizer, names, tensors, float(meta["step"]))
    return int(meta["epoch"]), meta.get("matmul", "torch")


def _restore(optimizer: torch.optim.Optimizer, names: list[str], tensors: dict[str, torch.Tensor],
             step: float) -> None:
    group = optimizer.param_groups[0]
    # fused (and capturable) AdamW keeps its step count on the parameter's device, the
    # per-parameter loop on the CPU; a CPU step next to CUDA parameters fails the fused kernel
    on_device = group.get("fused") or group.get("capturable")
    for name, param in zip(names, group["params"], strict=True):
        if f"{name}.exp_avg" in tensors:
            optimizer.state[param] = {
                "step": torch.tensor(step, dtype=torch.float32, device=param.device if on_device else "cpu"),
                "exp_avg": tensors[f"{name}.exp_avg"].to(param.device),
                "exp_avg_sq": tensors[f"{name}.exp_avg_sq"].to(param.device),
            }


def header(path: str) -> dict[str, str]:
    """A checkpoint's or state's header metadata, as stored (no tensors read)."""
    return _open(path, with_tensors=False)[1]


def checkpoint_metadata(path: str, verify: bool = False) -> dict:
    """The header of a checkpoint: ``{"epoch": int, "config": RunConfig, ...}``; reads no
    tensors unless ``verify`` (then all of them, checked against their checksum)."""
    _, meta = read_checkpoint(path) if verify else _open(path, with_tensors=False)
    return {"epoch": int(meta["epoch"]), "run_id": meta["run_id"],
            "config": RunConfig.from_dict(json.loads(meta["config"]))}
