"""The oneDNN product agrees with float64 to float32 rounding wherever it is used, and is refused where it would not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from store import layout
from tasks import checkpoints as ckpt
from tasks import onednn
from tasks.config import preset
from tasks.fast import FastForward
from tasks.model import build_model
from tasks.runs import prepare_run, train_run
from tasks.training import make_optimizer, train

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="oneDNN float32 matmul not available here")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b).abs().max() / b.abs().max()).item()


@needs_onednn
@pytest.mark.parametrize("d_in,d_out", [(128, 512), (512, 128), (128, 113), (7, 3)])
@pytest.mark.parametrize("compiled", [False, True])
def test_product_and_gradients_match_float64(d_in, d_out, compiled):
    """Both backward layouts (``d_in >= d_out`` and not), eager and under ``torch.compile``."""
    gen = torch.Generator().manual_seed(d_in + d_out)
    x = torch.randn(383, d_in, generator=gen, requires_grad=True)
    w = torch.randn(d_out, d_in, generator=gen, requires_grad=True)
    dy = torch.randn(383, d_out, generator=gen)
    lin = onednn.linear_for(x)
    assert lin is not onednn.dense
    f = torch.compile(lambda a, b: lin(a, b) * dy, dynamic=False) if compiled else (lambda a, b: lin(a, b) * dy)
    f(x, w).sum().backward()
    x64, w64, dy64 = x.detach().double(), w.detach().double(), dy.double()
    assert _rel(lin(x, w).detach(), x64 @ w64.T) < 1e-5
    assert _rel(x.grad, dy64 @ w64) < 1e-5
    assert _rel(w.grad, dy64.T @ x64) < 1e-5
    assert w.grad.is_contiguous()


def test_other_dtypes_and_devices_use_torch_matmul():
    assert onednn.linear_for(torch.zeros(1, dtype=torch.float64)) is onednn.dense
    if torch.cuda.is_available():
        assert onednn.linear_for(torch.zeros(1, device="cuda")) is onednn.dense


@needs_onednn
def test_lowering_matmul_precision_later_turns_it_off():
    """``set_float32_matmul_precision("medium")`` (oneDNN's matmul precision bf16) after the
    check: the next choice leaves the products to torch.matmul, which follows that setting."""
    settings = torch.backends.mkldnn.matmul
    before = settings.fp32_precision
    settings.fp32_precision = "bf16"
    try:
        assert onednn.linear_for(torch.zeros(1)) is onednn.dense
    finally:
        settings.fp32_precision = before
    assert onednn.linear_for(torch.zeros(1)) is not onednn.dense


def test_a_backend_that_loses_precision_is_refused(monkeypatch):
    """A product rounded through bfloat16 (what reduced-precision oneDNN modes do) fails the
    start-up check, so :func:`onednn.available` would keep every product on ``torch.matmul``."""
    monkeypatch.setattr(onednn, "_dnn", lambda x, w: (x.bfloat16() @ w.bfloat16().T).float())
    assert not onednn._shapes_agree()


def _fresh_process(context: str = "contextlib.nullcontext()", **env: str) -> list[str]:
    """``available()`` and whether ``linear_for`` picks torch.matmul, decided first inside ``context``."""
    code = ("import contextlib, torch; from tasks import onednn\n"
            f"with {context}:\n    print(onednn.available(), onednn.linear_for(torch.zeros(1)) is onednn.dense)")
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.slow  # a fresh interpreter
@needs_onednn
@pytest.mark.parametrize("context", ["torch.no_grad()", "torch.inference_mode()"])
def test_a_first_use_without_gradients_still_finds_it(context):
    """A process whose first product is an analysis's (under no_grad) decides as a training does."""
    assert _fresh_process(context) == ["True", "False"]


@pytest.mark.slow  # a fresh interpreter
def test_it_can_be_turned_off():
    assert _fresh_process(TDW_ONEDNN="0") == ["False", "True"]


class _Crash(Exception):
    pass


def _train_until(root, cfg, epoch):
    """Train, and die (as a kill would) right after the checkpoint of ``epoch`` is saved."""
    def crash(e):
        if e == epoch:
            raise _Crash
    with pytest.raises(_Crash):
        train_run(root, cfg, device="cpu", on_checkpoint=crash)


@pytest.mark.slow  # trains twice
@needs_onednn
def test_a_resumed_run_keeps_the_products_it_was_trained_with(tmp_path, monkeypatch):
    """The resume state records the products (``onednn.choice``). A run begun on torch.matmul
    (here: forced; in life, begun before oneDNN or with ``TDW_ONEDNN=0``) resumes on
    torch.matmul and ends bit-identical to an uninterrupted torch.matmul training, which
    oneDNN's rounding would not; a oneDNN run resumed where oneDNN is off says so."""
    cfg = preset("smoke", num_epochs=40, checkpoint_epochs=(0, 20, 39))

    def final(root):
        model = build_model(cfg)
        ckpt.load_into(model, layout.checkpoint_path(root, cfg.run_id, 39), cfg, 39)
        return FastForward(model, cfg).weights

    straight = {}
    for matmul in ("torch", "onednn"):
        model = build_model(cfg)
        train(cfg, model, make_optimizer(model, cfg), compile_mode="off", matmul=matmul)
        straight[matmul] = [w.detach().clone() for w in FastForward(model, cfg).weights]

    root = str(tmp_path / "torch")
    prepare_run(root, cfg)
    with monkeypatch.context() as m:
        m.setattr(onednn, "choice", lambda device: "torch")
        _train_until(root, cfg, 20)
    assert ckpt.read_checkpoint(layout.train_state_path(root, cfg.run_id))[1]["matmul"] == "torch"
    train_run(root, cfg, device="cpu")  # this process would choose oneDNN for a new run
    resumed = final(root)
    assert all(torch.equal(a, b) for a, b in zip(resumed, straight["torch"]))
    assert not all(torch.equal(a, b) for a, b in zip(resumed, straight["onednn"]))

    root = str(tmp_path / "onednn")
    prepare_run(root, cfg)
    _train_until(root, cfg, 20)
    monkeypatch.setattr(onednn, "choice", lambda device: "torch")
    with pytest.warns(UserWarning, match="trained with oneDNN"):
        train_run(root, cfg, device="cpu")
