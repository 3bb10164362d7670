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
from tasks.config import RunConfig
from tasks.fast import FastForward, applies
from tasks.model import trainable

SERIES = ("train_loss", "test_loss", "train_acc", "test_acc")


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU. A named device must exist."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available (use --device cpu)")
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
    return torch.optim.AdamW(
        list(trainable(model).values()), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas
    )


def loss_and_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy in float64 (float32 cannot go below ~1e-7) and accuracy."""
    loss = F.cross_entropy(logits.double(), targets)
    acc = (logits.argmax(-1) == targets).double().mean().item()
    return loss, acc


def last_position_logits(model: torch.nn.Module, cfg: RunConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(inputs (B, 3)) -> logits (B, d_vocab_out)`` at the ``=`` position: the exact fast
    forward where it applies, the TransformerLens forward otherwise."""
    if applies(cfg):
        fast = FastForward(model, cfg)
        return lambda x: fast.logits(x[:, :2])
    return lambda x: model(x)[:, -1]


OnCheckpoint = Callable[[int, torch.nn.Module, torch.optim.Optimizer, Series], None]
OnProgress = Callable[[int, Series], None]


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
) -> Series:
    """Train ``model`` from ``start_epoch`` (whose weights and optimiser state it holds) to
    ``cfg.num_epochs - 1``. ``on_checkpoint(epoch, model, optimizer, series)`` runs at each
    checkpoint epoch before that epoch's step; ``on_progress`` at most every ``progress_every_s``."""
    device = next(model.parameters()).device
    probe = data.full_probe(cfg.p).to(device)
    targets = data.labels(cfg.p).to(device)
    train_idx, test_idx = data.split(cfg.p, cfg.frac_train, cfg.data_seed)
    x_train, y_train = probe[train_idx.to(device)], targets[train_idx.to(device)]
    x_test, y_test = probe[test_idx.to(device)], targets[test_idx.to(device)]
    forward = last_position_logits(model, cfg)
    series = series or Series.empty(cfg.num_epochs)
    checkpoints = set(cfg.checkpoint_epochs)
    last_report = time.monotonic()

    for epoch in range(start_epoch, cfg.num_epochs):
        loss, acc = loss_and_accuracy(forward(x_train), y_train)
        series.train_loss[epoch], series.train_acc[epoch] = loss.item(), acc
        if epoch % cfg.test_every == 0 or epoch in checkpoints:
            with torch.no_grad():
                test_loss, test_acc = loss_and_accuracy(forward(x_test), y_test)
            series.test_loss[epoch], series.test_acc[epoch] = test_loss.item(), test_acc
        if epoch in checkpoints and on_checkpoint:
            on_checkpoint(epoch, model, optimizer, series)
        if epoch < cfg.num_epochs - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if on_progress and (time.monotonic() - last_report >= progress_every_s or epoch == cfg.num_epochs - 1):
            on_progress(epoch, series)
            last_report = time.monotonic()
    return series
