"""The run knobs, declared once. Each row of ``KNOBS`` is one knob; from the table come the
``tdw run``/``train``/``sweep`` options (``cli.main``), the sweep's list axes and its grid
(``grid``), the pipeline and sweep flows' parameters (``knob_parameters``), the Train page's fields
(``viz.train``) and the config a run is built from (``build_config``).

Adding a knob is one row here; a new config field also needs its check in
``tasks.config.validate`` and, being part of the identity, its ``IDENTITY_BASELINE``. Everywhere,
a knob left at ``None`` keeps the preset's value. Nothing here imports more than the config and the problems (numpy), so
the command line validates input without starting torch or Prefect.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
from dataclasses import dataclass
from typing import Any, Callable

from tasks import adaptive, config, problems
from tasks.config import EXTENT, ConfigError, RunConfig

DEFAULT_PRESET = "quick"  # tdw run, train and sweep, and the pipeline flow


def positive(text: str) -> int:
    """An option's text -> an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants an integer >= 1; got {text!r}")
    return value


def non_negative(text: str) -> int:
    """An option's text -> an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"wants an integer >= 0; got {text!r}")
    return value


def one_of(choices: tuple[str, ...], text: str) -> str:
    """An option's text -> itself, if it is one of ``choices``."""
    if text not in choices:
        raise argparse.ArgumentTypeError(f"wants one of {', '.join(choices)}; got {text!r}")
    return text


def epochs_list(text: str) -> list[int]:
    """``--checkpoints``' text ("0,100,500") -> increasing epochs >= 0."""
    try:
        epochs = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--checkpoints wants integers like 0,100,500; got {text!r}")
    if not epochs or any(b <= a for a, b in zip(epochs, epochs[1:])) or epochs[0] < 0:
        raise argparse.ArgumentTypeError(f"--checkpoints wants increasing epochs >= 0 without "
                                         f"repeats, like 0,100,500; got {text!r}")
    return epochs


@dataclass(frozen=True)
class Knob:
    """One run knob. ``kind`` is one value's type (``int``, ``float``, ``bool`` for a switch
    ``--x``/``--no-x``, ``list[int]``); ``parse`` reads an option's text with the knob's own
    check (default: ``kind``); ``to_config``/``from_config`` map the knob's value to the config
    field's at ``path`` and back (default: the same value)."""

    name: str  # flow parameter, Train field and option dest
    flag: str  # the tdw option
    kind: Any
    help: str
    path: str  # the config field it sets: "lr", "model.d_mlp"
    axis: str | None = None  # the sweep's list parameter (--seeds ...), or None: one value per sweep
    label: str | None = None  # the Train page's field, or None: not on the page
    parse: Callable[[str], Any] | None = None
    to_config: Callable[[Any], Any] = lambda value: value
    from_config: Callable[[Any], Any] = lambda value: value

    @property
    def identity(self) -> bool:
        """Part of the run id (else extent: how far and where a run is checkpointed)."""
        return self.path not in EXTENT

    def value(self, cfg: RunConfig):
        """The knob's value in ``cfg``."""
        owner, _, name = self.path.rpartition(".")
        return self.from_config(getattr(cfg.model if owner else cfg, name))

    def argv(self, value) -> list[str]:
        """The option that sets ``value`` (the inverse of the parser)."""
        if self.kind is bool:
            return [self.flag if value else f"--no-{self.flag[2:]}"]
        return [self.flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]


KNOBS: tuple[Knob, ...] = (
    Knob("p", "--p", int, "modulus, an odd prime", "p", axis="primes", label="modulus p (odd prime)"),
    Knob("task", "--task", str, f"the task learned (default: add): {problems.choices()}", "task", axis="tasks",
         label="task (add, sub, mul, div, x2+y2 ...)"),
    Knob("seed", "--seed", int, "model initialisation seed", "seed", axis="seeds", label="model seed"),
    Knob("data_seed", "--data-seed", int, "train/test split seed", "data_seed", axis="data_seeds",
         label="data seed"),
    Knob("frac_train", "--frac", float, "training fraction, in (0, 1)", "frac_train", axis="fracs",
         label="training fraction"),
    Knob("num_epochs", "--epochs", int, "number of epochs", "num_epochs", label="epochs"),
    Knob("lr", "--lr", float, "AdamW learning rate", "lr", axis="lrs", label="learning rate (AdamW)"),
    Knob("weight_decay", "--wd", float, "AdamW weight decay", "weight_decay", axis="wds", label="weight decay"),
    Knob("checkpoints", "--checkpoints", list[int], "checkpoint epochs, e.g. 0,100,500", "checkpoint_epochs",
         parse=epochs_list, to_config=tuple, from_config=list),
    Knob("d_mlp", "--d-mlp", int, "MLP width in neurons (default: the preset's, 512)", "model.d_mlp",
         label="MLP width (neurons)", parse=positive),
    Knob("n_layers", "--layers", int, "transformer blocks (default: the preset's, 1)", "model.n_layers",
         label="layers", parse=positive),
    Knob("n_heads", "--heads", int, "attention heads per layer (default: the preset's, 4)", "model.n_heads",
         label="attention heads", parse=positive),
    Knob("d_model", "--d-model", int, "residual stream width (default: the preset's, 128)", "model.d_model",
         label="residual width (d_model)", parse=positive),
    Knob("d_head", "--d-head", int, "width of each head (default: the preset's, 32)", "model.d_head",
         label="head width (d_head)", parse=positive),
    Knob("act_fn", "--act", str, "MLP activation, relu or gelu (default: the preset's, relu)", "model.act_fn",
         label="activation (relu, gelu)"),
    Knob("ln", "--ln", bool, "LayerNorm before attention, MLP and unembedding (default: the preset's, off)",
         "model.normalization_type", label="LayerNorm", to_config=lambda on: "LN" if on else None,
         from_config=lambda norm: norm == "LN"),
    Knob("init", "--init", str, "initialisation (default: legacy, the HookedTransformer's: every weight "
         "N(0, 0.64/d_model)); native: TransformerLens 4's (W_O, W_out / sqrt(2 n_layers)); "
         "nanda: the original paper code's (N(0, 1/d_model), W_U N(0, 1/d_vocab)); or xavier_uniform, "
         "xavier_normal, kaiming_uniform, kaiming_normal", "model.init", axis="inits",
         label="initialisation", parse=lambda text: one_of(config.INITS, text)),
    Knob("state_every", "--state-every", int, "save the training state (weights, AdamW moments) every N "
         "epochs, for tdw zoom (default: 500; 0: never)", "state_every",
         label="save the state every N epochs (zoom)", parse=non_negative),
    Knob("schedule", "--schedule", str, "checkpoint schedule: fixed (default: the preset's epochs, or "
         "--checkpoints) or adaptive (a checkpoint where test loss, test accuracy or the weights move; "
         "tasks/adaptive.py)", "schedule", label="checkpoint schedule (fixed, adaptive)",
         parse=lambda text: one_of(adaptive.SCHEDULES, text)),
    Knob("checkpoints_max", "--checkpoints-max", int, "an adaptive schedule of at most N checkpoints, epoch "
         "0 and the last included (implies --schedule adaptive; its default: as many as the fixed schedule)",
         "checkpoints_max",
         label="checkpoints at most (adaptive)", parse=positive),
)
BY_NAME = {k.name: k for k in KNOBS}
AXES = {k.axis: k for k in KNOBS if k.axis}  # the sweep's list parameters


def build_config(preset: str = DEFAULT_PRESET, **values) -> RunConfig:
    """The preset with the knobs' values (by knob name; ``None`` keeps the preset's value),
    refused if its training would not fit in this machine's memory (``config.check_memory``)."""
    unknown = set(values) - set(BY_NAME)
    if unknown:
        raise ConfigError(f"unknown knobs: {', '.join(sorted(unknown))} (known: {', '.join(BY_NAME)})")
    cfg = config.override(config.preset(preset), {
        BY_NAME[name].path: BY_NAME[name].to_config(v) for name, v in values.items() if v is not None})
    config.check_memory(cfg)
    return cfg


def options(cfg: RunConfig) -> list[str]:
    """``--preset`` and the identity knobs' options (those that differ from the preset's) that
    give ``cfg``'s run id, for a command that resumes or extends it; ``[]`` when none do (a
    field no knob sets); the shortest, from the preset closest to ``cfg``."""
    found = []
    for name, base in config.PRESETS.items():
        knobs = [k for k in KNOBS if k.identity and k.value(cfg) != k.value(base)]
        if config.override(base, {k.path: k.to_config(k.value(cfg)) for k in knobs}).run_id == cfg.run_id:
            found.append(["--preset", name, *(x for k in knobs for x in k.argv(k.value(cfg)))])
    return min(found, key=len, default=[])


def grid(preset: str = "smoke", **given) -> list[RunConfig]:
    """The sweep's configs, in order, duplicates (same run id) dropped: every combination of the
    axes' lists (by axis name: ``seeds=[1, 2]``), with the other knobs' single values (by knob
    name: ``num_epochs=100``). An axis left out or ``None`` keeps the preset's value; every
    config is validated before anything starts."""
    scalars = {k.name for k in KNOBS if not k.axis}
    unknown = set(given) - set(AXES) - scalars
    if unknown:
        raise ConfigError(f"unknown sweep axes: {', '.join(sorted(unknown))} (known: {', '.join(AXES)})")
    lists = []
    for axis, knob in AXES.items():
        values = given.get(axis)
        if values is not None and len(values) == 0:
            raise ConfigError(f"sweep axis {axis} is empty")
        lists.append([(knob.name, v) for v in values] if values is not None else [(knob.name, None)])
    fixed = {name: v for name, v in given.items() if name in scalars}
    configs: dict[str, RunConfig] = {}
    for combo in itertools.product(*lists):
        cfg = build_config(preset, **fixed, **dict(combo))
        configs.setdefault(cfg.run_id, cfg)
    return list(configs.values())


def knob_parameters(axes: bool = False) -> Callable[[Callable], Callable]:
    """A decorator giving ``fn`` (``def f(preset, *, <its other parameters>, **knobs)``) the
    signature Prefect reads a flow's parameters from (``inspect.signature``): one keyword-only
    parameter per knob, default ``None``, after ``preset``; with ``axes``, a sweep axis's knob
    is a list under the axis's name. The knobs' help joins the docstring's ``Args`` (the
    parameters' descriptions in Prefect)."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        params, docs = [], []
        for k in KNOBS:
            name, kind = (k.axis, list[k.kind]) if axes and k.axis else (k.name, k.kind)
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=kind | None))
            docs.append(f"    {name}: {'a list of: ' if name == k.axis else ''}{k.help}")
        fn.__signature__ = sig.replace(parameters=[own[0], *params, *own[1:]])
        fn.__doc__ = f"{inspect.getdoc(fn)}\n\nArgs:\n" + "\n".join(docs)
        return fn

    return decorate
