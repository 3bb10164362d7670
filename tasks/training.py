"""The training loop: plain PyTorch, full batch, float64 loss, no I/O.

Conventions (the same in every series, checkpoint and view):
- epoch ``e`` is the model after ``e`` optimiser steps; epochs run ``0 .. num_epochs-1``, so a
  run takes ``num_epochs - 1`` steps and epoch 0 is the initial model;
- the series at epoch ``e`` (train and test loss and accuracy) are measured on that same model:
  the train loss of epoch ``e`` is the loss whose gradient makes step ``e + 1``;
- the test split is evaluated every ``test_every`` epochs and at every checkpoint; other epochs
  hold NaN in the test series.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tasks import data
from tasks.accel import should_compile, tune_allocator
from tasks.config import RunConfig, check_device_name
from tasks.fast import FastForward, forward_at_eq
from tasks.model import trainable

SERIES = ("train_loss", "test_loss", "train_acc", "test_acc")


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU. A named device (``cpu``, ``cuda``,
    ``cuda:N``) must exist here; anything else is refused in one line."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_name(device)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(f"device {device!r}: this machine has {n} CUDA GPU{'s' * (n != 1)} (cuda:0 .. cuda:{n - 1})")
    return dev


@dataclass
class Series:
    """Per-epoch records, shape (num_epochs,) float64 each; NaN where not measured."""

    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray

    @classmethod
    def empty(cls, num_epochs: int) -> "Series":
        return cls(*(np.full(num_epochs, np.nan) for _ in SERIES))

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SERIES}


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.AdamW:
    return adamw(list(trainable(model).values()), cfg)


def adamw(params: list[torch.nn.Parameter], cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW with the run's hyperparameters, fused (one kernel for all parameters: ~1.5 ms a
    step less than the per-parameter loop on the 2-core CPU); the same update rule."""
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, fused=True)


def loss_and_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy in float64 (float32 cannot go below ~1e-7) and accuracy, as 0-d tensors."""
    loss = F.cross_entropy(logits.double(), targets)
    return loss, (logits.argmax(-1) == targets).double().mean()


def _fast_loss(weights, static, x, y):
    return loss_and_accuracy(forward_at_eq(weights, x[:, :2], *static)[0], y)


# one compiled function for the process: the weights are inputs, not captured, so every model
# of a shape shares its graphs (one per batch size and grad mode) without recompiling
_compiled_fast_loss = torch.compile(_fast_loss, dynamic=False)


def objective(model: torch.nn.Module, cfg: RunConfig, compiled: bool = False, matmul: str | None = None):
    """``f(inputs (B, 3), targets) -> (float64 loss, accuracy)`` at the ``=`` position, 0-d
    tensors on the model's device (no host sync): the exact fast forward, at any depth, with or
    without LayerNorm (compiled with ``torch.compile`` if asked; its products as ``matmul``
    says, see :class:`tasks.fast.FastForward`)."""
    fast = FastForward(model, cfg, matmul)
    loss = _compiled_fast_loss if compiled else _fast_loss
    return lambda x, y: loss(fast.weights, fast.static, x, y)


OnCheckpoint = Callable[[int, torch.nn.Module, torch.optim.Optimizer, Series], None]
OnProgress = Callable[[int, Series], None]
OnState = Callable[[int, torch.nn.Module, torch.optim.Optimizer], None]
ShouldCheckpoint = Callable[[int, torch.Tensor, torch.nn.Module], bool]


def train(
    cfg: RunConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    start_epoch: int = 0,
    series: Series | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    on_progress: OnProgress | None = None,
    progress_every_s: float = 1.0,
    compile_mode: str = "auto",
    stop_epoch: int | None = None,
    matmul: str | None = None,
    on_state: OnState | None = None,
    should_checkpoint: ShouldCheckpoint | None = None,
) -> Series:
    """Train ``model`` from ``start_epoch`` (whose weights and optimiser state it holds) to
    ``cfg.num_epochs - 1``. ``on_checkpoint(epoch, model, optimizer, series)`` runs at each
    checkpoint epoch before that epoch's step; ``on_progress`` at most every ``progress_every_s``.
    ``compile_mode``: ``auto`` | ``on`` | ``off`` (see :func:`tasks.accel.should_compile`).
    ``stop_epoch``: stop once that epoch is evaluated (and checkpointed), before its step.
    ``matmul``: ``"torch"`` keeps the fast forward's products on ``torch.matmul`` (default: oneDNN
    where available; ``tasks.onednn.choice``). ``on_state(epoch, model, optimizer)`` runs
    at every multiple of ``cfg.state_every`` (none if 0), after ``on_checkpoint``.
    ``should_checkpoint(epoch, measured, model)`` picks the checkpoints instead of
    ``cfg.checkpoint_epochs`` (e.g. :class:`tasks.adaptive.Decider`): it is asked at every epoch
    whose test split is evaluated, with that epoch's measurements (a (4,) float64 tensor on the
    device, in ``SERIES`` order), so a rule that reads them syncs once per ``test_every`` epochs."""
    device = next(model.parameters()).device
    tune_allocator()
    probe = data.full_probe(cfg).to(device)
    targets = data.labels(cfg).to(device)
    train_idx, test_idx = data.split(cfg)
    x_train, y_train = probe[train_idx.to(device)], targets[train_idx.to(device)]
    x_test, y_test = probe[test_idx.to(device)], targets[test_idx.to(device)]
    evaluate = objective(model, cfg, should_compile(cfg, device, compile_mode), matmul)
    series = series or Series.empty(cfg.num_epochs)
    # the series are written on the device and copied to ``series`` when someone looks:
    # no host sync in the loop (it would stall a GPU every step)
    record = torch.full((cfg.num_epochs, len(SERIES)), float("nan"), dtype=torch.float64, device=device)
    flushed = start_epoch

    def flush(through: int) -> Series:
        nonlocal flushed
        values = record[flushed: through + 1].cpu().numpy()
        for i, name in enumerate(SERIES):
            getattr(series, name)[flushed: through + 1] = values[:, i]
        flushed = through + 1
        return series

    checkpoints = set(cfg.checkpoint_epochs)
    decide = should_checkpoint or (lambda epoch, measured, model: epoch in checkpoints)
    last_report = time.monotonic()
    for epoch in range(start_epoch, cfg.num_epochs):
        loss, acc = evaluate(x_train, y_train)
        record[epoch, 0], record[epoch, 2] = loss.detach(), acc
        tested = epoch % cfg.test_every == 0 or epoch in checkpoints
        if tested:
            with torch.no_grad():
                record[epoch, 1], record[epoch, 3] = evaluate(x_test, y_test)
        if tested and decide(epoch, record[epoch], model) and on_checkpoint:
            on_checkpoint(epoch, model, optimizer, flush(epoch))
        if on_state and cfg.state_every and epoch % cfg.state_every == 0:
            on_state(epoch, model, optimizer)
        if epoch == stop_epoch:
            return flush(epoch)
        if epoch < cfg.num_epochs - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if on_progress and (time.monotonic() - last_report >= progress_every_s or epoch == cfg.num_epochs - 1):
            on_progress(epoch, flush(epoch))
            last_report = time.monotonic()
    return flush(cfg.num_epochs - 1)
