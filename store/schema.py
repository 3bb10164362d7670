"""Dimensions, coordinates and variable declarations of a run's store (no Zarr here).

Every per-checkpoint variable has ``epoch`` first. The coordinate arrays make the store
self-describing: ``xarray.open_zarr`` labels every axis, including the Fourier components
(``const, cos 1, sin 1, ...``) and frequencies (``k = 1 .. (p-1)/2``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SERIES_DIM = "series_epoch"  # every epoch 0 .. num_epochs-1 (the training series)
SPLITS = ("train", "test", "all")
PARAMS = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")
MATRICES = ("W_E", "W_in", "W_out")
POSITIONS = ("a", "b", "=")


@dataclass(frozen=True)
class Variable:
    """One stored array. ``dims`` name its axes (``epoch`` first for per-checkpoint data);
    ``inner_chunk`` optionally shards one epoch into smaller read chunks along axis 1."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    long_name: str
    description: str
    units: str = ""
    hook: str = ""
    inner_chunk: int | None = None
    attrs: dict = field(default_factory=dict)


def fourier_labels(p: int) -> list[str]:
    """Row labels of the Fourier basis: ``const, cos 1, sin 1, ..., cos k, sin k``."""
    labels = ["const"]
    for k in range(1, (p - 1) // 2 + 1):
        labels += [f"cos {k}", f"sin {k}"]
    return labels


def dim_sizes(p: int, d_mlp: int, n_heads: int, n_checkpoints: int, num_epochs: int) -> dict[str, int]:
    return {
        "epoch": n_checkpoints, SERIES_DIM: num_epochs, "neuron": d_mlp, "head": n_heads,
        "a": p, "b": p, "c": p, "component": p, "freq": (p - 1) // 2,
        "split": len(SPLITS), "param": len(PARAMS), "matrix": len(MATRICES), "position": len(POSITIONS),
    }


def coordinates(p: int, d_mlp: int, n_heads: int, checkpoint_epochs, num_epochs: int) -> dict:
    """``name -> (dims, values, attrs)`` for every coordinate array."""
    n_freq = (p - 1) // 2
    return {
        "epoch": (("epoch",), np.asarray(checkpoint_epochs, dtype="int64"),
                  {"long_name": "checkpoint epoch", "description": "optimiser steps taken"}),
        SERIES_DIM: ((SERIES_DIM,), np.arange(num_epochs, dtype="int64"),
                     {"long_name": "epoch", "description": "optimiser steps taken"}),
        "a": (("a",), np.arange(p), {"long_name": "first operand a"}),
        "b": (("b",), np.arange(p), {"long_name": "second operand b"}),
        "c": (("c",), np.arange(p), {"long_name": "output class (a + b) mod p"}),
        "neuron": (("neuron",), np.arange(d_mlp), {"long_name": "MLP neuron"}),
        "head": (("head",), np.arange(n_heads), {"long_name": "attention head"}),
        "component": (("component",), np.asarray(fourier_labels(p), dtype=str),
                      {"long_name": "Fourier basis row"}),
        "freq": (("freq",), np.arange(1, n_freq + 1),
                 {"long_name": "frequency k", "description": "w_k = 2*pi*k/p"}),
        "split": (("split",), np.asarray(SPLITS, dtype=str), {"long_name": "data split"}),
        "param": (("param",), np.asarray(PARAMS, dtype=str), {"long_name": "weight matrix (TransformerLens name)"}),
        "matrix": (("matrix",), np.asarray(MATRICES, dtype=str), {"long_name": "weight matrix"}),
        "position": (("position",), np.asarray(POSITIONS, dtype=str),
                     {"long_name": "key position attended to from '='"}),
        "freq_label": (("freq",), np.asarray([f"k={k}" for k in range(1, n_freq + 1)], dtype=str),
                       {"long_name": "frequency label"}),
    }


SERIES_VARIABLES = (
    Variable("train_loss", (SERIES_DIM,), "float64", "train loss",
             "cross-entropy (float64) at '=' on the train split; epoch e = after e steps", "nats"),
    Variable("test_loss", (SERIES_DIM,), "float64", "test loss",
             "cross-entropy (float64) at '=' on the test split; NaN where not evaluated", "nats"),
    Variable("train_acc", (SERIES_DIM,), "float64", "train accuracy", "fraction correct on the train split"),
    Variable("test_acc", (SERIES_DIM,), "float64", "test accuracy",
             "fraction correct on the test split; NaN where not evaluated"),
)


def is_nan_fill(dtype: str) -> bool:
    return np.dtype(dtype).kind == "f"


def fill_value(dtype: str):
    return math.nan if is_nan_fill(dtype) else 0


def done_variable(analysis: str, needs: tuple[str, ...] = ()) -> Variable:
    """The completion record of one analysis: one element (and one chunk) per checkpoint;
    0 = not done, otherwise the stamp of the analysis version that wrote the data. Its
    ``needs`` attribute lists what the analysis waits for beyond its checkpoint (e.g.
    ``key_frequencies``, chosen from the final checkpoint); absent, it runs as checkpoints land."""
    return Variable(f"{analysis}_done", ("epoch",), "int64", f"{analysis} done",
                    "0: not analysed; else the version stamp of the analysis that wrote this epoch",
                    attrs={"needs": list(needs)} if needs else {})
