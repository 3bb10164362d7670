"""Security: nothing is unpickled, servers listen on loopback unless told otherwise, and no run id
or path from the command line or the viewer leaves the runs root."""

import os
import re
from pathlib import Path

import pytest

from cli.main import main, parser
from store import layout

ROOT = Path(__file__).resolve().parent.parent
UNPICKLERS = re.compile(r"\b(torch\.load|pickle\.loads?|cloudpickle\.loads?|joblib\.load|dill\.loads?)\s*\("
                        r"|allow_pickle\s*=\s*True|weights_only\s*=\s*False")


def test_no_code_path_unpickles():
    offenders = []
    for package in ("cli", "tasks", "flows", "store", "viz", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if UNPICKLERS.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_a_pickle_named_as_a_checkpoint_is_refused(tmp_path):
    import torch

    from tasks import checkpoints as ckpt

    path = tmp_path / "epoch_00000.pt"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ckpt.CheckpointError, match="only .safetensors"):
        ckpt.read_checkpoint(str(path))
    disguised = tmp_path / "epoch_00001.safetensors"  # a pickle under a safetensors name
    disguised.write_bytes(path.read_bytes())
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        ckpt.read_checkpoint(str(disguised))


def test_servers_listen_on_loopback_by_default():
    assert parser().parse_args(["serve"]).address == "127.0.0.1"
    assert parser().parse_args(["server"]).host == "127.0.0.1"


ESCAPES = ["..", "../x", "a/../../b", "/etc", "/etc/passwd", "~root", "a/b", ".hidden", "",
           "x" * 200, "run\x00id", "C:\\x", "a\\..\\b", "%2e%2e%2fetc", " spaced"]


@pytest.mark.parametrize("run_id", ESCAPES)
def test_run_ids_that_could_leave_the_root_are_refused(run_id, tmp_path, capsys):
    with pytest.raises(layout.LayoutError):
        layout.run_dir(str(tmp_path), run_id)
    assert main(["analyze", run_id, "--runs", str(tmp_path)]) == 2
    assert "invalid run id" in capsys.readouterr().err


def test_accepted_run_ids_stay_under_the_root(tmp_path):
    root = os.path.realpath(tmp_path)
    for run_id in ("p113-s999-d598-84ebef8d", "a.b_c-d", "0"):
        path = os.path.realpath(layout.run_dir(root, run_id))
        assert os.path.commonpath([root, path]) == root and path != root
