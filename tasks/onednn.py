"""``linear(x, w) = x @ w.T`` for the fast forward: on CPUs, float32 through oneDNN, checked
against float64 at start-up.

PyTorch hands CPU float32 matmuls to MKL. On AMD CPUs MKL takes its AVX2 path: on the 2-core
AMD EPYC (Zen 5, AVX-512) a ``(3830, 128) @ (128, 512)`` product runs ~77 GFLOP/s through MKL
and ~2.2x faster through oneDNN's float32 matmul, which dispatches on the instruction set, not
the vendor. Matmuls are ~85% of a compiled training step there. While a lowered matmul
precision is asked for (``torch.backends.mkldnn.matmul.fp32_precision`` = ``bf16``/``tf32``),
this module stands aside; otherwise :func:`available` checks the op once per process before any
use: on four shapes like the forward's (d_model 128, d_mlp 512, p 113, and a square one), the
product and both backward layouts must match float64 to 1e-5 relative (float32 rounding gives
~1e-6, bf16 ~1e-2), else every call stays on ``torch.matmul``. The choice never depends on
timing, so every process on a machine makes the same one. oneDNN and MKL round differently, so
a run's resume state records the choice (:func:`choice`) and a resumed run keeps it: one begun
on torch.matmul (before this module, or with ``TDW_ONEDNN=0``) stays on it; one begun on oneDNN
and resumed where it is off goes on with torch.matmul, correct but not bit-identical, and says
so. On Intel CPUs, where MKL takes its AVX-512 path, the gain is likely smaller (not measured
here). ``TDW_ONEDNN=0`` turns it off.

:func:`linear_for` picks the product once per model. ``tdw::linear`` is a custom op with its
own backward (two more ``tdw::linear`` products, each laid out the way oneDNN runs fastest), a
fake implementation for ``torch.compile`` (which calls it as an opaque kernel and fuses the work
around it).
"""

from __future__ import annotations

import functools
import os

import torch

_TOLERANCE = 1e-5  # relative to the product's largest entry: float32 gives ~1e-6, bf16 ~1e-2


def _dnn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # oneDNN sizes its OpenMP team from the calling thread, and a new thread (a task runner's
    # worker) starts at the core count: asking torch its count applies torch's to this thread
    # (the same thread count, hence the same bits, wherever the product runs)
    torch.get_num_threads()
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


@torch.library.custom_op("tdw::linear", mutates_args=())
def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x (B, d_in) @ w (d_out, d_in).T -> (B, d_out)`` through oneDNN."""
    return _dnn(x, w)


@_linear.register_fake
def _(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], w.shape[0]))


def _setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, dy: torch.Tensor):
    x, w = ctx.saved_tensors
    dx = _linear(dy, w.t()) if ctx.needs_input_grad[0] else None  # (B, d_out) @ (d_out, d_in)
    dw = None
    if ctx.needs_input_grad[1]:  # dy.T @ x, (d_out, d_in): oneDNN is fastest with the wider side second
        dw = _linear(dy.t(), x.t()) if x.shape[1] >= w.shape[0] else _linear(x.t(), dy.t()).t().contiguous()
    return dx, dw


_linear.register_autograd(_backward, setup_context=_setup)


def _shapes_agree() -> bool:
    """The products a step makes (forward, and both backward layouts, with transposed
    operands) match float64 to float32 accuracy, and their gradients reach both inputs."""
    gen = torch.Generator().manual_seed(0)
    for b, d_in, d_out in ((1000, 128, 512), (1000, 512, 128), (1000, 128, 113), (96, 128, 128)):
        x = torch.randn(b, d_in, generator=gen, requires_grad=True)
        w = torch.randn(d_out, d_in, generator=gen, requires_grad=True)
        dy = torch.randn(b, d_out, generator=gen)
        y = _linear(x, w)
        y.backward(dy)
        x64, w64, dy64 = x.detach().double(), w.detach().double(), dy.double()
        for got, ref in ((y, x64 @ w64.T), (x.grad, dy64 @ w64), (w.grad, dy64.T @ x64)):
            if got is None or got.shape != ref.shape:
                return False
            if (got.double() - ref).abs().max() > _TOLERANCE * ref.abs().max():
                return False
    return True


def _full_precision() -> bool:
    """No lowered float32 matmul precision was asked for (``torch.set_float32_matmul_precision
    ("medium")`` sets oneDNN's to bf16). This op measured exact under bf16 too (the check passes),
    but a user who asks for fast inexact matmuls gets torch.matmul, which follows the setting.
    Read on every choice: the setting may change after the check."""
    mkldnn_matmul = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    return getattr(mkldnn_matmul, "fp32_precision", "none") in ("ieee", "none")


@functools.cache
def available() -> bool:
    """Whether :func:`linear_for` may pick oneDNN in this process (checked once, on first use)."""
    if os.environ.get("TDW_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return False
    try:  # the first use may come under no_grad (an analysis): the check needs its gradients
        with torch.inference_mode(False), torch.enable_grad():
            return _shapes_agree()
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def dense(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x (B, d_in) @ w (d_out, d_in).T`` through ``torch.matmul``."""
    return x @ w.T


def choice(device: torch.device | str) -> str:
    """``"onednn"`` or ``"torch"``: the products :func:`linear_for` picks for float32 on ``device``
    (what a run's resume state records, so that a resumed run computes as before)."""
    return "torch" if linear_for(torch.empty(0, device=device)) is dense else "onednn"


def linear_for(like: torch.Tensor):
    """The ``linear(x, w)`` for 2-D operands of ``like``'s device and dtype: ``tdw::linear``
    for CPU float32 when :func:`available`, else :func:`dense` (GPUs, other dtypes, a failed
    check). Chosen outside any compiled region, which then sees one fixed function."""
    if like.device.type == "cpu" and like.dtype == torch.float32 and available() and _full_precision():
        return _linear
    return dense
