import os

import pytest
import torch

from tasks import checkpoints as ckpt
from tasks.config import RunConfig, preset
from tasks.model import build_model


def test_checkpoint_is_self_describing_and_loads(tmp_path):
    cfg = preset("smoke")
    model = build_model(cfg)
    path = str(tmp_path / "epoch_00010.safetensors")
    ckpt.save_checkpoint(path, model, cfg, 10)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial")]
    meta = ckpt.checkpoint_metadata(path)
    assert meta["epoch"] == 10 and meta["config"] == cfg and meta["run_id"] == cfg.run_id
    other = build_model(cfg.replace(seed=5))
    ckpt.load_into(other, path, meta["config"].replace(seed=cfg.seed), 10)
    assert torch.equal(other.W_E, model.W_E)


def test_wrong_epoch_or_run_is_refused(tmp_path):
    cfg = preset("smoke")
    path = str(tmp_path / "epoch_00010.safetensors")
    ckpt.save_checkpoint(path, build_model(cfg), cfg, 10)
    with pytest.raises(ckpt.CheckpointError, match="expected"):
        ckpt.load_into(build_model(cfg), path, cfg, 11)
    other = RunConfig(p=31, num_epochs=5)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_into(build_model(other), path, other, 10)


def test_truncated_and_non_safetensors_files_are_named(tmp_path):
    cfg = preset("smoke")
    path = str(tmp_path / "epoch_00010.safetensors")
    ckpt.save_checkpoint(path, build_model(cfg), cfg, 10)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="epoch_00010"):
        ckpt.read_checkpoint(path)
    pickle_path = str(tmp_path / "model.pt")
    torch.save({"x": 1}, pickle_path)
    with pytest.raises(ckpt.CheckpointError, match="only .safetensors"):
        ckpt.read_checkpoint(pickle_path)


def test_header_check_detects_truncation_without_loading_tensors(tmp_path):
    cfg = preset("smoke")
    path = str(tmp_path / "epoch_00010.safetensors")
    ckpt.save_checkpoint(path, build_model(cfg), cfg, 10)
    assert ckpt.checkpoint_metadata(path)["epoch"] == 10
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        ckpt.checkpoint_metadata(path)
