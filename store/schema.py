"""Dimensions, coordinates and variable declarations of a run's store (no Zarr here).

Every per-checkpoint variable has ``epoch`` first. The coordinate arrays and root attributes
make the store self-describing: ``xarray.open_zarr`` labels every axis, including the operands
``a``, ``b`` (the task's operand tokens in basis order: ``g^0, g^1, ...`` for a discrete-log
basis), the basis rows ``component`` (``const, cos 1, sin 1, ...``) and the frequencies
(``k = 1 .. n//2``) of the run's basis, whose description, kind and generator are root
attributes (``task_attributes``). ``c`` is every class token 0 .. p-1.

A per-layer variable has ``layer`` (0 .. n_layers-1, labelled ``layer 0, ...`` by
``layer_label``) right after ``epoch``. A store written before that dimension existed holds its
per-layer variables without it: they are layer 0 of a 1-layer model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tasks.problems.basis import Basis

SERIES_DIM = "series_epoch"  # every epoch 0 .. num_epochs-1 (the training series)
SPLITS = ("train", "test", "all")
PARAMS = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")
LAYER_MATRICES = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")  # one layer's, heads side by side
POSITIONS = ("a", "b", "=")
SITES = ("attn", "mlp")  # the residual stream at '=' after a layer's attention / after its MLP


@dataclass(frozen=True)
class Variable:
    """One stored array. ``dims`` name its axes (``epoch`` first for per-checkpoint data);
    ``inner_chunk`` optionally shards one epoch into smaller read chunks along axis 1;
    ``sizes`` gives the sizes of dimensions only this variable has (e.g. ``chain``, ``draw``)."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    long_name: str
    description: str
    units: str = ""
    hook: str = ""
    inner_chunk: int | None = None
    attrs: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)


def task_attributes(task: str, formula: str, basis: Basis) -> dict:
    """The root attributes that name a run's task and the basis of its Fourier quantities
    (``generator``: g of a discrete-log basis, else None). A store without them is ``add``."""
    return {"task": task, "task_formula": formula, "basis": basis.description, "basis_kind": basis.kind,
            "generator": basis.generator}


def dim_sizes(basis: Basis, p: int, d_mlp: int, n_heads: int, n_checkpoints: int, num_epochs: int,
              n_layers: int = 1) -> dict[str, int]:
    """Dimension sizes: the operand axes and basis rows have the basis's n entries, the
    frequencies n//2, the classes p."""
    return {
        "epoch": n_checkpoints, SERIES_DIM: num_epochs, "layer": n_layers, "neuron": d_mlp, "head": n_heads,
        "a": basis.n, "b": basis.n, "c": p, "component": basis.n, "freq": basis.n // 2,
        "split": len(SPLITS), "param": len(PARAMS), "layer_matrix": len(LAYER_MATRICES),
        "position": len(POSITIONS), "site": len(SITES),
    }


def coordinates(basis: Basis, formula: str, p: int, d_mlp: int, n_heads: int, checkpoint_epochs,
                num_epochs: int, n_layers: int = 1) -> dict:
    """``name -> (dims, values, attrs)`` for every coordinate array."""
    n_freq = basis.n // 2
    order = (f"in basis order ({basis.description}): position i is {basis.generator}^i mod p"
             if basis.generator else f"in basis order ({basis.description})")
    in_basis = {"basis": basis.description}
    return {
        "epoch": (("epoch",), np.asarray(checkpoint_epochs, dtype="int64"),
                  {"long_name": "checkpoint epoch", "description": "optimiser steps taken"}),
        SERIES_DIM: ((SERIES_DIM,), np.arange(num_epochs, dtype="int64"),
                     {"long_name": "epoch", "description": "optimiser steps taken"}),
        "a": (("a",), np.asarray(basis.values), {"long_name": "first operand a", "description": order}),
        "b": (("b",), np.asarray(basis.values), {"long_name": "second operand b", "description": order}),
        "c": (("c",), np.arange(p), {"long_name": f"output class {formula}"}),
        "layer": (("layer",), np.arange(n_layers), {"long_name": "layer (transformer block)"}),
        "layer_label": (("layer",), np.asarray([f"layer {i}" for i in range(n_layers)], dtype=str),
                        {"long_name": "layer label"}),
        "neuron": (("neuron",), np.arange(d_mlp), {"long_name": "MLP neuron"}),
        "head": (("head",), np.arange(n_heads), {"long_name": "attention head"}),
        "component": (("component",), np.asarray(basis.labels, dtype=str),
                      {"long_name": "Fourier basis row", **in_basis}),
        "freq": (("freq",), np.arange(1, n_freq + 1),
                 {"long_name": "frequency k", "description": f"w_k = 2*pi*k/{basis.n}", **in_basis}),
        "split": (("split",), np.asarray(SPLITS, dtype=str), {"long_name": "data split"}),
        "param": (("param",), np.asarray(PARAMS, dtype=str), {"long_name": "weight matrix (TransformerLens name)"}),
        "layer_matrix": (("layer_matrix",), np.asarray(LAYER_MATRICES, dtype=str),
                         {"long_name": "weight matrix of a layer (TransformerLens name, heads side by side)"}),
        "position": (("position",), np.asarray(POSITIONS, dtype=str),
                     {"long_name": "key position attended to from '='"}),
        "site": (("site",), np.asarray(SITES, dtype=str),
                 {"long_name": "residual stream at '='",
                  "description": "attn: after the layer's attention (resid_mid); mlp: after its MLP (resid_post)"}),
        "freq_label": (("freq",), np.asarray([f"k={k}" for k in range(1, n_freq + 1)], dtype=str),
                       {"long_name": "frequency label", **in_basis}),
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
