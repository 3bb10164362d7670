"""Zoom 200 epochs inside a run's generalisation window: the replay's time against training
(200 + state_every) epochs from the same saved state in the same process, and the analyses'
time for the new checkpoints.

    OMP_NUM_THREADS=1 python bench/zoom.py RUN_ID [--runs ROOT] [--span 200] [--every 10]

Works on a copy of the run (a temporary runs root), so the run itself is left as it was. The
window is the run's generalisation window as ``tdw zoom --auto`` finds it
(``tasks.transitions.generalisation``); the zoom covers ``span`` epochs from its onset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from store import layout  # noqa: E402
from store.run_store import open_run  # noqa: E402
from tasks import checkpoints as ckpt  # noqa: E402
from tasks import transitions, zoom  # noqa: E402
from tasks.model import build_model, trainable  # noqa: E402
from tasks.runs import analysis_to_do, analyze_epoch  # noqa: E402
from tasks.training import make_optimizer, train  # noqa: E402


def plain_training(root: str, cfg, start: int, epochs: int) -> float:
    """Seconds to train ``epochs`` epochs from the saved state at ``start``, writing nothing."""
    model = build_model(cfg, torch.device("cpu"))
    optimizer = make_optimizer(model, cfg)
    saved = ckpt.load_state(layout.state_path(root, cfg.run_id, start), model, optimizer,
                            list(trainable(model)), cfg)
    t = time.perf_counter()
    train(cfg.replace(checkpoint_epochs=()), model, optimizer, start_epoch=start, stop_epoch=start + epochs,
          compile_mode="on" if saved["compiled"] else "off", matmul=saved["matmul"])
    return time.perf_counter() - t


def identical_on_replay(root: str, cfg, after: int) -> str:
    """Replay the run's first scheduled checkpoint after epoch ``after`` with its file moved
    aside, and compare: whether the replay reproduces what training wrote, bit for bit."""
    later = [e for e in cfg.checkpoint_epochs if e > after]
    if not later:
        return "no scheduled checkpoint after the state to compare with"
    path = layout.checkpoint_path(root, cfg.run_id, later[0])
    aside = path.replace(".safetensors", ".trained.safetensors")
    os.replace(path, aside)
    zoom.replay(root, cfg, [later[0]], device="cpu")
    a, b = ckpt.read_checkpoint(path)[0], ckpt.read_checkpoint(aside)[0]
    same = all(torch.equal(a[k], b[k]) for k in a)
    return f"checkpoint {later[0]} replayed from epoch {after}: {'bit-identical' if same else 'DIFFERS'} to the trained one"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_id")
    ap.add_argument("--runs", default=layout.runs_root())
    ap.add_argument("--span", type=int, default=200, help="epochs zoomed (default 200)")
    ap.add_argument("--every", type=int, default=10, help="a new checkpoint every N epochs (default 10)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = zoom.load_config(args.runs, args.run_id)
    series = open_run(args.runs, args.run_id, mode="r").series()
    (window,) = transitions.generalisation(series) or [None]
    if window is None or not cfg.state_every:
        sys.exit(f"run {args.run_id} has no generalisation window or no saved states")
    start = window.start
    stop = start + args.span - 1
    with tempfile.TemporaryDirectory(prefix="tdw-bench-zoom-") as root:
        shutil.copytree(layout.run_dir(args.runs, args.run_id), layout.run_dir(root, args.run_id))
        epochs = zoom.plan(cfg, zoom.trained_through(root, args.run_id), start, stop, every=args.every)
        point = zoom.replay_point(root, cfg, epochs[0])
        print(f"run {args.run_id}: generalisation window {window.start}-{window.end} ({window.why})")
        print(f"zoom {start}-{stop} every {args.every}: {len(epochs)} new checkpoints; {point.describe()}", flush=True)
        earlier = analysis_to_do(root, args.run_id)
        if earlier:  # so that only the zoom's checkpoints are timed below
            print(f"analysing the run's {len(earlier)} unanalysed checkpoints first (not timed)", flush=True)
            for epoch in earlier:
                analyze_epoch(root, args.run_id, epoch)
        base_epochs = args.span + cfg.state_every
        plain_training(root, cfg, point.epoch, 20)  # compile (if the run compiles) and warm up
        baseline = plain_training(root, cfg, point.epoch, base_epochs)
        print(f"training {base_epochs} epochs (span {args.span} + state_every {cfg.state_every}) from the same "
              f"state: {baseline:.1f} s ({1000 * baseline / base_epochs:.1f} ms/epoch)", flush=True)
        t = time.perf_counter()
        zoom.zoom(root, args.run_id, epochs, device="cpu")
        replay = time.perf_counter() - t
        print(f"replay (epochs {point.epoch}..{epochs[-1]}, {epochs[-1] - point.epoch} steps, checkpoints written, "
              f"store grown): {replay:.1f} s", flush=True)
        print(f"ratio replay / training (span + state_every) epochs: {replay / baseline:.2f}", flush=True)
        print(identical_on_replay(root, cfg, point.epoch), flush=True)
        t = time.perf_counter()
        pending = analysis_to_do(root, args.run_id)
        for epoch in pending:
            analyze_epoch(root, args.run_id, epoch)
        analyses = time.perf_counter() - t
    print(f"analyses of the {len(pending)} new checkpoints (one thread, one after another): {analyses:.1f} s "
          f"({analyses / max(len(pending), 1):.2f} s each)")


if __name__ == "__main__":
    main()
