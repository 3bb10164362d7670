"""``tdw``: the workbench's command line.

Exit codes: 0 ok; 2 bad input (one line on stderr, no traceback); 1 a run failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# before Prefect is imported: its server's telemetry would write to the temporary server's
# database while a flow starts ("database is locked" tracebacks); set it to "true" to opt in
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the temporary server (no PREFECT_API_URL) may take longer than Prefect's 20 s to start on a
# busy 2-core machine (seen: a Train-page run failing with "Timed out while attempting to
# connect to ephemeral Prefect API server" while a browser and the viewer shared the cores)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from cli import deploy, guard, server, zoom  # noqa: E402
from tasks.config import ENV_DEVICE, PRESETS, check_device_name  # noqa: E402
from tasks.knobs import DEFAULT_PRESET, KNOBS, build_config, positive  # noqa: E402

APP = Path(__file__).resolve().parent.parent / "viz" / "app.py"


class Usage(Exception):
    """Bad input: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (not the whole usage block), exit code 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _knobs(sub: argparse.ArgumentParser, axes: bool = False) -> None:
    """The preset and one option per knob (``tasks.knobs.KNOBS``); with ``axes``, a sweep axis's
    knob is a comma-separated list (``--seeds 1,2``)."""
    sub.add_argument("--preset", default=DEFAULT_PRESET,
                     help=f"{' | '.join(PRESETS)} (default: {DEFAULT_PRESET})")
    for k in KNOBS:
        if axes and k.axis:
            flag = f"--{k.axis.replace('_', '-')}"
            sub.add_argument(flag, dest=k.axis, type=_list(k.kind, flag),
                             help=f"a comma-separated list of: {k.help} (one run each)")
        elif k.kind is bool:
            sub.add_argument(k.flag, dest=k.name, action=argparse.BooleanOptionalAction, help=k.help)
        else:
            sub.add_argument(k.flag, dest=k.name, type=k.parse or k.kind, help=k.help)


def _run_options(sub: argparse.ArgumentParser) -> None:
    _knobs(sub)
    _common(sub)
    _training(sub)
    sub.add_argument("--threads", type=positive, default=1, help="torch threads (default 1)")


def _training(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    sub.add_argument("--compile", default="auto", choices=("auto", "on", "off"), dest="compile_mode",
                     help="torch.compile the training step: auto = on a GPU, and on a CPU for runs "
                          "of 5,000+ epochs (same function; ~1.4x faster after ~15 s of compiling)")


def _list(kind, flag: str):
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} wants a comma-separated list like 1,2,3; got {text!r}")
    return parse


def _sweep_parser(sp) -> None:
    sw = sp.add_parser(
        "sweep", help="train and analyse a grid of runs (one process per core)",
        description="Train and analyse every combination of the lists given (each list is "
                    "comma-separated), each other knob given once for every run (a knob left out "
                    "keeps the preset's value), one process per core with one thread each. Each run "
                    "keeps its own run id; running the same sweep again resumes it. Example: tdw sweep --preset quick --seeds 1,2 --data-seeds 1,2")
    _knobs(sw, axes=True)
    _common(sw)
    _training(sw)
    sw.add_argument("--concurrency", type=positive, help="runs at once (default: one per core; 1 on a GPU)")


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--runs", help="runs root (default: $TDW_RUNS or ./runs)")


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="tdw", description="Training-dynamics workbench: train "
                                 "small transformers on (a + b) mod p and watch them grok.")
    sp = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sp.add_parser("run", help="train and analyse a run (the pipeline flow)")
    _run_options(run)
    _scheduler(run)
    _llc(run)
    _run_options(sp.add_parser("train", help="train only (checkpoints, series; no analysis)"))
    a = sp.add_parser("analyze", help="analyse the missing or stale checkpoints of a run")
    a.add_argument("run_id")
    _common(a)
    a.add_argument("--threads", type=positive, default=1, help="torch threads (default 1)")
    _scheduler(a)
    _llc(a)
    s = sp.add_parser("serve", help="serve the viewer on http://127.0.0.1:5006")
    _common(s)
    s.add_argument("--port", type=int, default=5006)
    s.add_argument("--address", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--show", action="store_true", help="open a browser")
    r = sp.add_parser("runs", help="list the runs in the runs root with their status")
    _common(r)
    rep = sp.add_parser("report", help="write a validation report (HTML) of a run and print its verdicts")
    rep.add_argument("run_id")
    rep.add_argument("--out", help="HTML path (default: <run folder>/report.html; "
                     "./report-<run id>.html for an object-store root)")
    _common(rep)
    _sweep_parser(sp)
    zoom.add_parser(sp, _common)
    server.add_parser(sp)
    deploy.add_parser(sp)
    ap.epilog = ("Start with `tdw run --preset smoke` (seconds) or `--preset quick` (~2 min), then "
                 "`tdw serve`. `tdw COMMAND --help` tells more. Runs root: --runs, else $TDW_RUNS, "
                 "else ./runs; a URL such as s3://bucket/runs works too.")
    return ap


def _scheduler(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--scheduler", type=_address, metavar="ADDRESS",
                     help="run the analysis fan-out on the Dask cluster whose scheduler is at "
                          "ADDRESS, e.g. tcp://10.0.0.5:8786 (default: threads in this process)")


def _llc(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--llc", action="store_true",
                     help="also estimate the local learning coefficient of every checkpoint (SGLD; "
                          "costs more than every other analysis together; needs the [llc] extra)")


def _check_llc(args) -> None:
    import importlib.util

    if args.llc and importlib.util.find_spec("devinterp") is None:
        raise Usage('--llc needs devinterp: pip install -e ".[llc]"')


def _address(text: str) -> str:
    import re

    if not re.fullmatch(r"([a-z]+://)?[\w.\-\[\]:]+:\d+", text):
        raise argparse.ArgumentTypeError(f"--scheduler wants an address like tcp://host:8786; got {text!r}")
    return text


def _knob_values(args) -> dict:
    """The knobs' values given on the command line, by name (``None``: the preset's); for a
    sweep, the axes' lists by axis name."""
    return {name: getattr(args, name) for name in (k.axis if k.axis in vars(args) else k.name for k in KNOBS)}


def _config(args):
    return build_config(args.preset, **_knob_values(args))


def _check_root(root: str) -> None:
    from store.files import StorageError, check_url, exists, is_url

    if is_url(root):
        check_url(root)
        try:
            exists(root)  # credentials, endpoint, network: one line now rather than a traceback later
        except Exception as exc:  # noqa: BLE001 (any backend's error)
            raise StorageError(f"runs root {root} cannot be reached ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    elif os.path.exists(root) and not os.path.isdir(root):
        raise Usage(f"runs root {root} is a file, not a folder")


def _writable(root: str) -> None:
    """A command that writes checks its runs root first (creating it): one line if it can't."""
    from store.files import is_url

    if is_url(root):
        return
    try:
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise Usage(f"runs root {root} is not writable ({exc.strerror or exc})") from None


def cmd_run(args) -> int:
    from tasks.lock import refuse_if_training

    cfg = _config(args)  # bad input fails here, with one line, before torch and Prefect start
    _check_device_name(args.device)
    _check_device(args.device)
    _writable(args.root)
    _check_llc(args)
    refuse_if_training(args.root, cfg.run_id)
    from flows.pipeline import pipeline

    run_id = pipeline(args.preset, **_knob_values(args), runs_dir=args.runs, device=args.device,
                      threads=args.threads, scheduler=args.scheduler, compile_mode=args.compile_mode,
                      llc=args.llc)
    print(f"run {run_id} trained and analysed under {args.root}")
    return 0


def cmd_train(args) -> int:
    from tasks.lock import refuse_if_training

    cfg = _config(args)
    _check_device_name(args.device)
    _check_device(args.device)
    _writable(args.root)
    refuse_if_training(args.root, cfg.run_id)
    from flows.train import train_flow

    run_id = train_flow(cfg.to_dict(), args.root, device=args.device, analyze=False, threads=args.threads,
                        compile_mode=args.compile_mode)
    print(f"run {run_id} trained under {args.root}; analyse it with: tdw analyze {run_id}")
    return 0


def cmd_sweep(args) -> int:
    from tasks.knobs import grid

    configs = grid(args.preset, **_knob_values(args))  # bad input fails here, before torch and Prefect
    _check_device_name(args.device)
    _check_device(args.device)
    _writable(args.root)
    from flows.sweep import SweepFailed, sweep_flow

    print(f"sweep of {len(configs)} run(s) under {args.root}", flush=True)
    try:
        run_ids = sweep_flow(args.preset, **_knob_values(args), runs_dir=args.runs, device=args.device,
                             concurrency=args.concurrency, compile_mode=args.compile_mode)
    except SweepFailed as exc:
        print(f"tdw: {exc}", file=sys.stderr)
        return 1
    print("\n".join(run_ids))
    print(f"{len(run_ids)} run(s) trained and analysed; compare them with: tdw serve")
    return 0


def cmd_analyze(args) -> int:
    from flows.analyze import analyze
    from tasks.runs import load_config

    _check_checkpoints(args.root, load_config(args.root, args.run_id))  # one clear line
    _check_llc(args)
    epochs = analyze(args.run_id, args.root, threads=args.threads, scheduler=args.scheduler, llc=args.llc)
    print(f"analysed {len(epochs)} checkpoint(s) of {args.run_id}")
    return 0


def _check_checkpoints(root: str, cfg) -> None:
    """Refuse to analyse a run whose checkpoints on disk are damaged or another run's."""
    from tasks.runs import checkpoint_problem

    bad = [(e, why) for e in cfg.checkpoint_epochs
           if (why := checkpoint_problem(root, cfg, e)) not in (None, "missing")]
    if bad:
        listing = "; ".join(f"epoch {e}: {why}" for e, why in bad[:3]) + (" ..." if len(bad) > 3 else "")
        raise Usage(f"run {cfg.run_id} has {len(bad)} unusable checkpoint(s) ({listing}); "
                    f"train the run again (same config) to recompute them")


def cmd_runs(args) -> int:
    from tasks.runs import run_status
    from store.layout import list_run_ids

    root = args.root
    ids = list_run_ids(root)
    if not ids:
        print(f"no runs under {root}")
        return 0
    print(f"{'run id':34} {'p':>4} {'trained':>13} {'analysed':>9} {'test acc':>8}")
    for run_id in ids:
        st = run_status(root, run_id)
        if "error" in st:
            print(f"{run_id:34} {st['config'].p:>4} {st['error']}")
            continue
        trained = f"{st['trained_through'] + 1}/{st['num_epochs']}"
        analysed = f"{st['analysed']}/{st['checkpoints']}"
        print(f"{run_id:34} {st['config'].p:>4} {trained:>13} {analysed:>9} {st['test_acc']:>8.3f}")
    return 0


def cmd_report(args) -> int:
    from store.files import is_url
    from store.layout import absolute, run_dir
    from tasks.runs import load_config
    from viz import report

    root = args.root
    load_config(root, args.run_id)  # unknown id -> one clear line
    default = f"report-{args.run_id}.html" if is_url(root) else os.path.join(run_dir(root, args.run_id), "report.html")
    out = args.out or default
    print(report.write(absolute(root), args.run_id, out))
    print(f"\nreport written to {out}")
    return 0


def cmd_serve(args) -> int:
    from store.layout import absolute

    env = {**os.environ, "TDW_RUNS": absolute(args.root)}
    hosts = [f"{h}:{args.port}" for h in {args.address, "127.0.0.1", "localhost"}]
    # --warm: the app runs once at start-up (imports, the latest run's first reads), so the first
    # page opens about as fast as the later ones (measured: 8.2 s -> ~5 s at p = 113)
    cmd = [sys.executable, "-m", "panel", "serve", str(APP), "--warm", "--address", args.address,
           "--port", str(args.port), *[f"--allow-websocket-origin={h}" for h in hosts]]
    if args.show:
        cmd.append("--show")
    print(f"viewer on http://{args.address}:{args.port}/app  (runs root {env['TDW_RUNS']}; Ctrl-C stops)",
          flush=True)
    try:
        return subprocess.call(cmd, env=env, preexec_fn=guard.die_with_parent)  # dies with tdw
    except KeyboardInterrupt:
        return 0


def _root(args) -> str:
    from store.layout import runs_root

    root = runs_root(args.runs)
    _check_root(root)
    return root


def _check_device_name(device: str | None) -> None:
    """The device named (or ``$TDW_DEVICE``) is one the workbench runs on (no torch needed)."""
    check_device_name(device or os.environ.get(ENV_DEVICE))


def _check_device(device: str | None) -> None:
    """The device is here (asks torch about CUDA: once the input is otherwise valid)."""
    from tasks.training import pick_device

    try:
        pick_device(device or os.environ.get(ENV_DEVICE))
    except (ValueError, RuntimeError) as exc:
        raise Usage(str(exc).splitlines()[0])


COMMANDS = {"run": cmd_run, "train": cmd_train, "sweep": cmd_sweep, "analyze": cmd_analyze, "runs": cmd_runs,
            "serve": cmd_serve, "report": cmd_report, "zoom": zoom.command, "server": server.command, "deploy": deploy.command}


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command itself, not a caller of main(): what it starts dies with it
        guard.install()
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed in one line)
        return int(exc.code or 0)
    from store.files import StorageError
    from store.layout import LayoutError
    from tasks.config import ConfigError, RunError
    from tasks.lock import RunBusy

    try:
        if hasattr(args, "runs"):
            args.root = _root(args)  # resolved and checked once (for a URL: one request)
        return COMMANDS[args.command](args)
    except (Usage, ConfigError, LayoutError, RunError, RunBusy, StorageError, server.PortInUse,
            deploy.DeployError) as exc:
        print(f"tdw: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
