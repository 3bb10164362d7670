"""Training speed: the original workbench's loop (TransformerLens forward over all 3
positions, test loss every epoch, float64 loss) against the project's trainer as a canonical
run uses it (fast forward, compiled, test split every 10 epochs), on the same config and thread
count, rounds interleaved (one loop runs at a time). Prints ms/epoch (medians over rounds) and
the ratio.

The baseline runs as the original loop ran: in its own process (a child started once, asked for
each round), with glibc's default allocator. The project's trainer keeps freed memory mapped
(``tasks.accel.tune_allocator``), a process-wide setting that glibc cannot undo in-process, so
``--baseline in-process`` runs the baseline's rounds in the trainer's process with that setting
too: a conservative ratio, the baseline ~10% faster than it ever ran. The project's per-pair
products go through oneDNN where ``tasks.onednn`` finds it faster and exact (the baseline's stay
on PyTorch's default); ``TDW_ONEDNN=0`` measures the project without it.

    .venv/bin/python bench/train_speed.py [--p 113] [--task add[,mul ...]] [--layers 1] [--rounds 7]
                                          [--epochs 10] [--threads 1] [--test-every 10] [--compile on|off]
                                          [--baseline own-process|in-process]

Every task trains with the same fast forward; only its inputs and labels differ (mul and div
have (p - 1)² pairs instead of p²). ``--task add,mul`` measures both in one process, rounds
interleaved, and prints each task's ms/epoch as a ratio to the first task's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch
import torch.nn.functional as F

from tasks import data, onednn
from tasks.config import preset
from tasks.model import build_model
from tasks.training import make_optimizer, pick_device, train


def _sync(model) -> None:
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()


def baseline_epochs(cfg, model, opt, n: int) -> float:
    dev = next(model.parameters()).device
    x, y = data.full_probe(cfg).to(dev), data.labels(cfg).to(dev)
    tr, te = (s.to(dev) for s in data.split(cfg))
    _sync(model)
    t = time.perf_counter()
    for _ in range(n):
        loss = F.cross_entropy(model(x[tr])[:, -1].double(), y[tr])
        loss.backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            F.cross_entropy(model(x[te])[:, -1].double(), y[te])
    _sync(model)
    return (time.perf_counter() - t) / n * 1e3


def project_epochs(cfg, model, opt, n: int, compile_mode: str) -> float:
    run = cfg.replace(num_epochs=n + 1, checkpoint_epochs=(0,))
    _sync(model)
    t = time.perf_counter()
    train(run, model, opt, compile_mode=compile_mode)
    _sync(model)
    return (time.perf_counter() - t) / n * 1e3


def _setup(tasks: list[str], args):
    """Configs, models and optimisers, one per task, for either loop (the same seeds, so the same
    initial weights in either process)."""
    cfgs = {task: preset("canonical", p=args.p, test_every=args.test_every, task=task, n_layers=args.layers)
            for task in tasks}
    models = {task: build_model(cfg, pick_device(args.device)) for task, cfg in cfgs.items()}
    return cfgs, models, {task: make_optimizer(m, cfgs[task]) for task, m in models.items()}


def _baseline_child(conn, tasks: list[str], args) -> None:
    """The baseline in its own process: answers each ``(task, epochs)`` with ms/epoch."""
    torch.set_num_threads(args.threads)
    cfgs, models, opts = _setup(tasks, args)
    while (ask := conn.recv()) is not None:
        task, n = ask
        conn.send(baseline_epochs(cfgs[task], models[task], opts[task], n))


class Baseline:
    """``epochs(task, n)`` -> ms/epoch of the baseline loop, in a child process (``own``) or here."""

    def __init__(self, tasks: list[str], args, own: bool):
        self.conn = self.child = None
        if own:
            self.conn, theirs = multiprocessing.get_context("spawn").Pipe()
            self.child = multiprocessing.get_context("spawn").Process(
                target=_baseline_child, args=(theirs, tasks, args), daemon=True)
            self.child.start()
        else:
            self.cfgs, self.models, self.opts = _setup(tasks, args)

    def epochs(self, task: str, n: int) -> float:
        if self.conn is None:
            return baseline_epochs(self.cfgs[task], self.models[task], self.opts[task], n)
        self.conn.send((task, n))
        return self.conn.recv()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.send(None)
            self.child.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--task", default="add", help="a task, or several (add,mul): each trained by both "
                                                 "loops, rounds interleaved, each task's speed also as a ratio to the first's")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10, help="baseline epochs per round")
    ap.add_argument("--project-epochs", type=int, default=100,
                    help="project epochs per round (more: its per-call set-up is amortised as in a real run)")
    ap.add_argument("--layers", type=int, default=1, help="transformer blocks (both loops)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test-every", type=int, default=10, help="the project trainer's (canonical: 10)")
    ap.add_argument("--compile", default="on", choices=("on", "off"))
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--baseline", default="own-process", choices=("own-process", "in-process"),
                    help="where the baseline runs: its own process, as the original loop ran (default), "
                         "or this one, sharing the trainer's allocator setting (conservative)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tasks = args.task.split(",")
    baseline = Baseline(tasks, args, own=args.baseline == "own-process")
    cfgs, models, opts = _setup(tasks, args)
    times = {(task, loop): [] for task in tasks for loop in ("baseline", "project")}
    warm = {}
    for task, cfg in cfgs.items():
        baseline.epochs(task, 2)  # warm-up
        t = time.perf_counter()
        project_epochs(cfg, models[task], opts[task], args.test_every, args.compile)  # + compile
        warm[task] = time.perf_counter() - t
    for _ in range(args.rounds):
        for task, cfg in cfgs.items():
            times[task, "baseline"].append(baseline.epochs(task, args.epochs))
            times[task, "project"].append(project_epochs(cfg, models[task], opts[task], args.project_epochs,
                                                         args.compile))
    baseline.close()
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"device={args.device} p={args.p} layers={args.layers} threads={args.threads} project: test_every={args.test_every} "
          f"compile={args.compile} onednn={'on' if onednn.available() and args.device == 'cpu' else 'off'} "
          f"baseline={args.baseline}; "
          f"{args.rounds} rounds of {args.epochs} baseline and {args.project_epochs} project epochs per task")
    for task in tasks:
        base, proj = median[task, "baseline"], median[task, "project"]
        n_pairs = len(data.operands(cfgs[task])) ** 2
        print(f"task {task} ({n_pairs} pairs; first call incl. compilation {warm[task]:.1f} s)")
        print(f"  baseline (TransformerLens full forward): {base:8.1f} ms/epoch")
        print(f"  project trainer:                          {proj:8.1f} ms/epoch")
        print(f"  ratio (baseline / project):               {base / proj:8.2f}x")
        print(f"  a 25,000-epoch run at this speed: {25_000 * proj / 6e4:.1f} min training "
              f"(baseline {25_000 * base / 6e4:.0f} min)")
        if task != tasks[0]:
            print(f"  project trainer, {task} / {tasks[0]}: {proj / median[tasks[0], 'project']:.3f}; "
                  f"baseline {base / median[tasks[0], 'baseline']:.3f}")


if __name__ == "__main__":
    main()
