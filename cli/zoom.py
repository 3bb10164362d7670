"""``tdw zoom RUN_ID``: add checkpoints inside a trained run by replaying its training
(``tasks.zoom``), then analyse them (the ``zoom-<run id>`` flow, ``flows/zoom.py``).

``--from A --to B --every K`` (or ``--count N``) names the epochs; ``--auto [--budget N]``
finds the run's transitions in its series (``tasks.transitions``) and says what it found. Bad
input is one line (``tasks.zoom.ZoomError``, a ``RunError``; exit code 2)."""

from __future__ import annotations

import argparse
import os

from tasks.config import ENV_DEVICE, check_device_name
from tasks.knobs import positive


def add_parser(sp, common) -> None:
    """The ``zoom`` subcommand; ``common`` adds the options every command shares (``--runs``)."""
    z = sp.add_parser(
        "zoom", help="add checkpoints inside a trained run by replaying its training",
        description="Add checkpoints at new epochs inside a trained run, bit-identical to a run that had "
                    "them in its schedule, by replaying training from the nearest saved state "
                    "(--state-every), then analyse them. Example: tdw zoom RUN_ID --from 3000 --to 3200 "
                    "--every 10, or tdw zoom RUN_ID --auto --budget 40")
    z.add_argument("run_id")
    z.add_argument("--from", dest="start", type=int, metavar="A", help="first epoch of the range")
    z.add_argument("--to", dest="stop", type=int, metavar="B", help="last epoch of the range (inclusive)")
    z.add_argument("--every", type=int, metavar="K", help="a checkpoint every K epochs from A")
    z.add_argument("--count", type=int, metavar="N", help="N checkpoints spread evenly inside A..B")
    z.add_argument("--auto", action="store_true",
                   help="find the run's transitions in its series and densify them")
    z.add_argument("--budget", type=int, default=40, metavar="N",
                   help="with --auto: new checkpoints in all (default 40)")
    common(z)
    z.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present); bit-identical "
                                    "on the device and thread count the run was trained with")
    z.add_argument("--threads", type=positive, default=1, help="torch threads (default 1, as runs train)")


def epochs_asked(args: argparse.Namespace, cfg) -> list[int]:
    """The new epochs the options ask for (printing what ``--auto`` found and why)."""
    from tasks import zoom

    ranged = (args.start, args.stop, args.every, args.count)
    if args.auto:
        if any(v is not None for v in ranged):
            raise zoom.ZoomError("--auto chooses its own epochs: leave out --from, --to, --every and --count")
        epochs, found = zoom.auto(args.root, cfg, args.budget)
        print("\n".join(found))
        return epochs
    if args.start is None or args.stop is None:
        raise zoom.ZoomError("give --from A and --to B, with --every K or --count N (or --auto)")
    return zoom.plan(cfg, zoom.trained_through(args.root, cfg.run_id), args.start, args.stop,
                     args.every, args.count)


def command(args: argparse.Namespace) -> int:
    from tasks import zoom
    from tasks.lock import refuse_if_training

    cfg = zoom.load_config(args.root, args.run_id)
    epochs = epochs_asked(args, cfg)
    check_device_name(args.device or os.environ.get(ENV_DEVICE))
    refuse_if_training(args.root, cfg.run_id)
    if epochs:
        listing = ", ".join(map(str, epochs[:12])) + (" ..." if len(epochs) > 12 else "")
        print(f"zoom {cfg.run_id}: {len(epochs)} new checkpoint(s) at epochs {listing}; "
              f"{zoom.replay_point(args.root, cfg, epochs[0]).describe()}", flush=True)
    else:
        print(f"zoom {cfg.run_id}: no new epochs (each is a checkpoint already); analysing what is pending",
              flush=True)
    from flows.zoom import zoom_flow

    analysed = zoom_flow(cfg.run_id, epochs, runs_dir=args.root, device=args.device, threads=args.threads)
    print(f"added {len(epochs)} checkpoint(s) to {cfg.run_id}; analysed {len(analysed)}")
    return 0
