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


def _flip_bit(path: str, from_end: int) -> None:
    """Flip one bit of the byte ``from_end`` bytes before the end of the file."""
    with open(path, "r+b") as f:
        f.seek(-from_end, os.SEEK_END)
        byte = f.read(1)[0]
        f.seek(-from_end, os.SEEK_END)
        f.write(bytes([byte ^ 0x10]))


def test_a_flipped_bit_is_caught_by_the_checksum(tmp_path):
    cfg = preset("smoke")
    path = str(tmp_path / "epoch_00000.safetensors")
    ckpt.save_checkpoint(path, build_model(cfg), cfg, 0)
    _flip_bit(path, 100)  # inside the tensor data, past the header
    assert ckpt.checkpoint_metadata(path)["epoch"] == 0  # the header alone cannot tell
    with pytest.raises(ckpt.CheckpointError, match="epoch_00000.safetensors is corrupt"):
        ckpt.read_checkpoint(path)


@pytest.mark.slow  # replays training
def test_damaged_checkpoints_are_named_and_recomputed_identically(tmp_path):
    from store import layout
    from tasks.runs import prepare_run, train_run

    root = str(tmp_path)
    cfg = prepare_run(root, preset("smoke"))
    train_run(root, cfg, device="cpu")
    path = {e: layout.checkpoint_path(root, cfg.run_id, e) for e in cfg.checkpoint_epochs}
    original = {e: {k: v.clone() for k, v in ckpt.read_checkpoint(p)[0].items()} for e, p in path.items()}
    state_mtime = os.path.getmtime(layout.train_state_path(root, cfg.run_id))
    _flip_bit(path[25], 64)
    with open(path[50], "r+b") as f:  # truncated
        f.truncate(os.path.getsize(path[50]) // 2)
    os.remove(path[100])  # missing

    with pytest.warns(UserWarning, match=r"recomputing 3 checkpoint\(s\).*epoch 25: .*corrupt.*epoch 50: .*"
                                         r"unreadable.*epoch 100: missing"):
        train_run(root, cfg, device="cpu")
    for e in cfg.checkpoint_epochs:
        again, _ = ckpt.read_checkpoint(path[e])
        assert all(torch.equal(again[k], original[e][k]) for k in again), e
    assert os.path.exists(path[25] + ".corrupt") and os.path.exists(path[50] + ".corrupt")
    assert os.path.getmtime(layout.train_state_path(root, cfg.run_id)) == state_mtime  # not rewritten
