"""Run configuration: frozen dataclasses whose defaults are the canonical grokking settings.

Field names follow TransformerLens's config (``d_model``, ``n_heads``, ``d_mlp``, ``act_fn`` ...).
A run's identity is everything that determines its trajectory (task, model, optimiser, seeds,
training fraction); how far it is trained and where it is checkpointed are its *extent*, so a run
can be extended without changing its id. Run ids never move: a field added to the identity
records the value that runs had before it existed (``IDENTITY_BASELINE``), and enters the hash
only when it differs from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field

from tasks import adaptive, problems

EXTENT = ("num_epochs", "checkpoint_epochs", "test_every", "state_every",  # RunConfig fields outside the identity
          "schedule", "checkpoints_max", "checkpoint_floor", "schedule_thresholds")
# The identity fields hashed into every run id: the fields as they stood when run ids were pinned
# (tests/test_run_ids.py). Never add to this set.
HASHED_ALWAYS = frozenset({
    "p", "lr", "weight_decay", "betas", "frac_train", "seed", "data_seed",
    "model.n_layers", "model.n_heads", "model.d_model", "model.d_head", "model.d_mlp",
    "model.act_fn", "model.normalization_type",
})
# Every identity field added since: its path ("model.x" for a ModelConfig field) -> the value, as
# ``to_dict`` writes it, that reproduces what runs did before the field existed. The field enters
# the hash only when it differs from this value, so existing runs keep their ids, and a
# config.json written before the field existed loads with this value. Its dataclass default
# usually equals it; where it does not ("model.init": runs made before the field existed were
# initialised natively, new ones default to legacy), a run at the default has a new id.
IDENTITY_BASELINE: dict[str, object] = {"task": "add", "model.init": "native"}
# The initialisation schemes (``ModelConfig.init``; built in ``tasks.model``): "legacy" is the
# legacy HookedTransformer's, every weight N(0, (0.8/sqrt(d_model))^2); "native" TransformerLens
# 4's, the same with W_O and W_out scaled by 1/sqrt(2 n_layers); "nanda" the original code of
# Nanda et al. 2023's, every weight N(0, 1/d_model) and W_U N(0, 1/d_vocab); the others are
# TransformerLens's init modes of those names. Biases are zero in every scheme.
INITS = ("legacy", "native", "nanda", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")
ENV_DEVICE = "TDW_DEVICE"  # the device when none is named (e.g. a deployment's job variable)


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and why."""


class RunError(RuntimeError):
    """A run cannot be started or continued as asked; the message says why."""


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def canonical_schedule(num_epochs: int = 25_000) -> tuple[int, ...]:
    """The earlier tools' hand-tuned p=113 schedule (94 epochs) plus the final epoch."""
    epochs = [
        *range(0, 1_401, 100),
        *range(1_500, 8_501, 500),
        *range(9_000, 12_901, 100),
        *range(13_000, 24_501, 500),
    ]
    return tuple(sorted({e for e in epochs if e < num_epochs} | {num_epochs - 1}))


def log_linear_schedule(num_epochs: int, every: int, n_log: int = 12) -> tuple[int, ...]:
    """Log-spaced early checkpoints (memorisation happens in the first ~200 epochs), then
    one every ``every`` epochs, then the final epoch."""
    early = {0} | {round(2 ** (i * 8 / n_log)) for i in range(n_log + 1)}  # 1 .. 256
    regular = set(range(0, num_epochs, every))
    return tuple(sorted(e for e in early | regular | {num_epochs - 1} if e < num_epochs))


@dataclass(frozen=True)
class ModelConfig:
    """The transformer (TransformerLens field names). ``d_vocab = p + 1``, ``n_ctx = 3``."""

    n_layers: int = 1
    n_heads: int = 4
    d_model: int = 128
    d_head: int = 32
    d_mlp: int = 512
    act_fn: str = "relu"
    normalization_type: str | None = None  # no LayerNorm
    init: str = "legacy"  # the initialisation scheme, one of INITS


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce a run. Defaults: Nanda et al. 2023, canonical p=113."""

    p: int = 113  # modulus; an odd prime
    task: str = "add"  # what is learned: a name in tasks.problems.PROBLEMS ("add", "mul", "x2+y2" ...)
    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 1e-3  # AdamW
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    frac_train: float = 0.3  # fraction of the task's n² operand pairs used for training
    seed: int = 999  # model initialisation seed
    data_seed: int = 598  # train/test split seed
    # Extent (not identity): epochs e = 0 .. num_epochs-1, where epoch e is the model after e
    # optimiser steps; checkpoint_epochs is sorted, unique and always holds num_epochs - 1.
    num_epochs: int = 25_000
    checkpoint_epochs: tuple[int, ...] = ()
    test_every: int = 1  # test split evaluated every N epochs, and always at checkpoints
    # training state (weights, AdamW moments) saved every N epochs for ``tdw zoom`` (0: never);
    # at p = 113 a replay of up to 500 epochs takes ~20 s on one CPU thread
    state_every: int = 500
    # "fixed": checkpoint_epochs (the numbers below unset); "adaptive": checkpoints where the
    # dynamics move (tasks.adaptive), at most checkpoints_max of them (0: as many as the default
    # fixed schedule; a budget given with "fixed" makes the schedule adaptive), at least one every checkpoint_floor epochs (0: derived), with thresholds
    # on |d ln test loss|, |d test accuracy| and the relative parameter distance (empty:
    # tasks.adaptive.THRESHOLDS). An adaptive run's checkpoint_epochs are those decided so far
    # (and the final epoch).
    schedule: str = "fixed"
    checkpoints_max: int = 0
    checkpoint_floor: int = 0
    schedule_thresholds: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        validate(self)
        if self.checkpoints_max and self.schedule == "fixed":  # a budget asks for the adaptive schedule
            object.__setattr__(self, "schedule", "adaptive")
        if not self.checkpoint_epochs:
            fixed = self.schedule == "fixed"
            object.__setattr__(self, "checkpoint_epochs", default_schedule(self.p, self.num_epochs) if fixed else (0,))
        object.__setattr__(
            self, "checkpoint_epochs", normalise_schedule(self.checkpoint_epochs, self.num_epochs)
        )
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "schedule_thresholds", tuple(float(t) for t in self.schedule_thresholds))
        if self.schedule == "adaptive":
            _fill_adaptive(self)
        else:  # the adaptive schedule's numbers do not apply
            for name, unset in (("checkpoints_max", 0), ("checkpoint_floor", 0), ("schedule_thresholds", ())):
                object.__setattr__(self, name, unset)

    # --- derived ---
    @property
    def d_vocab(self) -> int:
        return self.p + 1  # tokens 0..p-1 and "=" (id p)

    @property
    def d_vocab_out(self) -> int:
        return self.p

    @property
    def n_freq(self) -> int:
        return (self.p - 1) // 2

    def identity(self) -> dict:
        """The fields that determine the trajectory (hashed into the run id), less any field
        added since ids were pinned whose value is its ``IDENTITY_BASELINE``."""
        d = self.to_dict()
        for extent in EXTENT:
            d.pop(extent)
        for path, baseline in IDENTITY_BASELINE.items():
            *owner, name = path.split(".")
            fields = d["model"] if owner else d
            if fields.get(name) == baseline:
                del fields[name]
        return d

    @property
    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"p{self.p}-s{self.seed}-d{self.data_seed}-{digest[:8]}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["checkpoint_epochs"] = list(self.checkpoint_epochs)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(sorted(unknown))}")
        model = d.pop("model", {})
        if not isinstance(model, ModelConfig):  # a field written before it existed: its baseline
            model = ModelConfig(**{**_baselines("model."), **model})
        d = {**_baselines(""), **d}
        d["betas"] = tuple(d.get("betas", (0.9, 0.98)))
        d["checkpoint_epochs"] = tuple(d.get("checkpoint_epochs", ()))
        return cls(model=model, **d)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> "RunConfig":
        return override(self, changes)


def _baselines(prefix: str) -> dict:
    """``IDENTITY_BASELINE``'s fields directly under ``prefix`` ("" or "model."), by name."""
    return {path.removeprefix(prefix): value for path, value in IDENTITY_BASELINE.items()
            if path.startswith(prefix) and "." not in path.removeprefix(prefix)}


def override(cfg: RunConfig, changes: dict[str, object]) -> RunConfig:
    """``cfg`` with the fields at ``changes``' paths (``"lr"``, ``"model.d_mlp"``) replaced; a
    new ``num_epochs``, ``schedule`` or ``checkpoints_max`` re-derives what is not given of the
    checkpoint epochs and an adaptive schedule's budget and floor."""
    top = {path: value for path, value in changes.items() if not path.startswith("model.")}
    model = {path.removeprefix("model."): v for path, v in changes.items() if path.startswith("model.")}
    if model:
        top["model"] = dataclasses.replace(cfg.model, **model)
    if top.keys() & {"num_epochs", "schedule", "checkpoints_max"}:
        for derived in ("checkpoint_epochs", "checkpoints_max", "checkpoint_floor"):
            top.setdefault(derived, RunConfig.__dataclass_fields__[derived].default)
    return dataclasses.replace(cfg, **top)


def _fill_adaptive(c: RunConfig) -> None:
    """An adaptive schedule's budget, floor and thresholds where left unset, then their checks."""
    final, forced = c.num_epochs - 1, len(set(c.checkpoint_epochs) - {0, c.num_epochs - 1})
    budget = c.checkpoints_max or len(default_schedule(c.p, c.num_epochs))
    object.__setattr__(c, "checkpoints_max", budget)
    if not c.checkpoint_floor:
        object.__setattr__(c, "checkpoint_floor", adaptive.derived_floor(budget, final, c.test_every, forced))
    object.__setattr__(c, "schedule_thresholds", c.schedule_thresholds or adaptive.THRESHOLDS)
    if len(c.schedule_thresholds) != len(adaptive.THRESHOLDS) or min(c.schedule_thresholds) <= 0:
        raise ConfigError(f"schedule_thresholds must be {len(adaptive.THRESHOLDS)} positive numbers "
                          f"(ln test loss, test accuracy, parameter distance), got {list(c.schedule_thresholds)}")


def check_device_name(device: str | None) -> None:
    """Refuse a device the workbench cannot run on, without asking torch: ``cpu``, ``cuda``,
    ``cuda:N`` or ``auto`` (also ``None`` or ""); whether CUDA is present is for
    ``tasks.training.pick_device`` to find out."""
    if device not in (None, "", "auto") and not re.fullmatch(r"(cpu|cuda)(:\d+)?", device):
        raise ConfigError(f"unknown device {device!r}: the workbench runs on cpu, cuda, cuda:N or auto")


def default_schedule(p: int, num_epochs: int) -> tuple[int, ...]:
    if p == 113 and num_epochs == 25_000:
        return canonical_schedule(num_epochs)
    return log_linear_schedule(num_epochs, every=max(1, num_epochs // 50))


def normalise_schedule(epochs, num_epochs: int) -> tuple[int, ...]:
    out = set()
    for e in epochs:
        if isinstance(e, bool) or not isinstance(e, int):
            if isinstance(e, float) and e.is_integer():
                e = int(e)
            else:
                raise ConfigError(f"checkpoint epochs must be integers, got {e!r}")
        if not 0 <= e < num_epochs:
            raise ConfigError(
                f"checkpoint epoch {e} is outside [0, {num_epochs}) (epochs run 0..num_epochs-1)"
            )
        out.add(e)
    return tuple(sorted(out | {num_epochs - 1}))


def validate(c: RunConfig) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    need(isinstance(c.p, int) and not isinstance(c.p, bool), f"p must be an integer, got {c.p!r}")
    need(c.p >= 3 and c.p % 2 == 1 and is_prime(c.p),
         f"p must be an odd prime >= 3 (the Fourier analyses need it), got {c.p}")
    need(c.p <= 1_000, f"p={c.p} is too large for the full p² probe (at most 1000)")
    need(isinstance(c.task, str), f"task must be a name, got {c.task!r}")
    need(len(problems.get(c.task).operands(c.p)) >= 3, f"task {c.task} at p={c.p} has fewer than 3 operand values")
    need(isinstance(c.frac_train, (int, float)) and 0 < c.frac_train < 1,
         f"frac_train must be strictly between 0 and 1, got {c.frac_train!r}")
    need(isinstance(c.num_epochs, int) and c.num_epochs >= 1,
         f"num_epochs must be an integer >= 1, got {c.num_epochs!r}")
    need(isinstance(c.test_every, int) and c.test_every >= 1,
         f"test_every must be an integer >= 1, got {c.test_every!r}")
    need(isinstance(c.state_every, int) and not isinstance(c.state_every, bool) and c.state_every >= 0,
         f"state_every must be an integer >= 0 (0: no saved states), got {c.state_every!r}")
    need(c.schedule in adaptive.SCHEDULES, f"schedule must be one of {', '.join(adaptive.SCHEDULES)}, got {c.schedule!r}")
    for name in ("checkpoints_max", "checkpoint_floor"):
        v = getattr(c, name)
        need(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{name} must be an integer >= 0, got {v!r}")
    need(c.checkpoints_max == 0 or c.checkpoints_max >= 2,
         f"checkpoints_max must be at least 2 (epoch 0 and the final epoch), got {c.checkpoints_max}")
    need(c.lr > 0, f"lr must be positive, got {c.lr}")
    need(c.weight_decay >= 0, f"weight_decay must be >= 0, got {c.weight_decay}")
    need(len(c.betas) == 2 and all(0 <= b < 1 for b in c.betas), f"betas must be two numbers in [0, 1), got {c.betas}")
    for name in ("seed", "data_seed"):
        v = getattr(c, name)
        need(isinstance(v, int) and v >= 0, f"{name} must be a non-negative integer, got {v!r}")
    m = c.model
    for name in ("n_layers", "n_heads", "d_model", "d_head", "d_mlp"):
        v = getattr(m, name)
        need(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
             f"{name} must be an integer >= 1, got {v!r}")
    need(m.act_fn in ("relu", "gelu"), f"act_fn must be relu or gelu, got {m.act_fn!r}")
    need(m.normalization_type in (None, "LN"), "normalization_type must be None or 'LN'")
    need(m.init in INITS, f"init must be one of {', '.join(INITS)}, got {m.init!r}")


def training_bytes(c: RunConfig) -> int:
    """An estimate, in bytes, of what training ``c`` holds, from the config alone: every
    parameter (biases included) in float32 with its gradient and AdamW's two moments, and the
    training forward's activations on the training pairs (``tasks.fast``: two positions per
    pair in every layer but the last, one in the last; per position ~6 residual-wide vectors,
    q, k, v and z, scores and pattern, the MLP's pre and post, in float32), plus the logits in
    float32 with their two float64 loss copies."""
    m = c.model
    hd = m.n_heads * m.d_head
    per_layer = 4 * hd * m.d_model + 2 * m.d_model * m.d_mlp + 3 * hd + m.d_mlp + 6 * m.d_model
    params = (c.d_vocab + 3) * m.d_model + m.n_layers * per_layer + (m.d_model + 1) * (c.d_vocab_out + 2)
    n_train = math.ceil(c.frac_train * len(problems.get(c.task).operands(c.p)) ** 2)
    per_position = 6 * m.d_model + 4 * hd + 6 * m.n_heads + 2 * m.d_mlp
    activations = n_train * ((2 * m.n_layers - 1) * per_position * 4 + c.d_vocab_out * (4 + 8 + 8))
    return 4 * params * 4 + activations


def available_bytes() -> int:
    """The memory this machine has available now, in bytes (``MemAvailable`` in /proc/meminfo,
    else the free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(c: RunConfig, available: int | None = None) -> None:
    """Refuse, in one line, a run whose training (:func:`training_bytes`) would not fit in the
    memory available (default: :func:`available_bytes`), before anything is allocated."""
    need, have = training_bytes(c), available_bytes() if available is None else available
    if need > have:
        raise ConfigError(
            f"model too large for this machine's memory at p={c.p}: training needs about "
            f"{need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available (fewer layers, narrower "
            f"widths or a smaller p)")


PRESETS: dict[str, RunConfig] = {
    # seconds: plumbing for tests (p=31 at fraction 0.6 memorises by ~50 epochs)
    "smoke": RunConfig(
        p=31, lr=3e-3, frac_train=0.6, num_epochs=150, checkpoint_epochs=(0, 25, 50, 100),
    ),
    # the demo: memorises by epoch ~40, generalises (test accuracy 0.95) at 1,255 and is cleaned
    # up (test loss 3e-7) by 2,000, in 1-1.5 minutes of training on a 2-core CPU (legacy init;
    # native: 1,150). With the native init, at lr 3e-3 the same run groks near 2,300 and takes
    # 3,500 epochs; at 1e-2 near 500, with loss spikes on the way
    "quick": RunConfig(p=59, lr=6e-3, num_epochs=2_000, test_every=5),
    # two blocks at p = 59, half the pairs for training: generalises (test accuracy 0.95) at
    # epoch 385 and stays there (lowest 0.952 after, 1.000 at the end; legacy init). At lr 6e-3
    # it generalises sooner (195; 540 at fraction 0.3) but loss spikes undo it (bench/depth_sweep.py,
    # docs/benchmarks.md "Deeper models")
    "deep": RunConfig(p=59, lr=3e-3, frac_train=0.5, num_epochs=1_500, test_every=5,
                      model=ModelConfig(n_layers=2)),
    # Nanda et al. 2023 / the TransformerLens grokking demo (test split every 10 epochs and at
    # every checkpoint: the test forward costs as much as the training step)
    "canonical": RunConfig(test_every=10),
}


def preset(name: str, **overrides) -> RunConfig:
    """A preset with fields replaced, named as in RunConfig or ModelConfig (``d_mlp=100``);
    ``None`` keeps the preset's value."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return override(PRESETS[name], {f"model.{k}" if k in ModelConfig.__dataclass_fields__ else k: v
                                    for k, v in overrides.items() if v is not None})
