"""Adaptive checkpoint schedules: a checkpoint where the dynamics move, within a budget.

``Rule`` decides, at every epoch whose test split is evaluated (the *candidates*: multiples of
``test_every``), whether that epoch is a checkpoint:

- epoch 0, the final epoch ``T = num_epochs - 1`` and every epoch already listed in the run's
  ``checkpoint_epochs`` (given with ``--checkpoints``, decided before a resume, or added by
  ``tdw zoom``) are always checkpoints (*forced*), even past the budget;
- the *change* since the last checkpoint ``c`` is measured three ways: ``|Δ ln(test loss +
  0.01)|`` (nats; losses under ~0.01 nats count as solved, so the late exponential tail of the
  loss is no motion), ``|Δ test accuracy|`` and the relative parameter distance
  ``‖θ − θ_c‖ / ‖θ_c‖`` over every trainable parameter; its *score* is the largest of the three
  divided by its threshold;
- fast motion counts more than slow drift: a threshold is the change that earns a checkpoint
  over ``M`` epochs, and over fewer it shrinks as ``((e − c)/M)^0.25``, so checkpoints crowd
  where the dynamics are fast, not merely where change has piled up;
- the *floor*: at least one checkpoint every ``M`` epochs (``M`` a multiple of ``test_every``);
- the *budget* ``N`` (checkpoints at most, epoch 0 and ``T`` included) is never exceeded by the
  rule's own checkpoints: those still owed from epoch ``e`` are reserved, ``reserve(e) =
  ⌈(T − e)/M⌉`` (the floor's and the final one) plus the forced epochs between, and a
  checkpoint is taken only if it leaves that reserve intact, ``used + 1 + reserve(e) <= N``. Right after epoch 0 this holds with room
  to spare when ``M`` is derived: the floor takes about an eighth of the budget
  (``M = ⌈T / (⌊(N − 2 − k)/8⌋ + 1)⌉``, rounded up to the candidate grid; ``k`` the forced epochs
  other than 0 and ``T``), so the rest is *free* for changes;
- thresholds rise as the free budget runs down: a change makes a checkpoint when its score is at
  least ``s(e) · ((e − c)/M)^0.25``, ``s(e) = max(1, F0 · (T − e)/T / free(e))``, where ``free(e) = N − used − reserve(e)`` and
  ``F0 = N − 1 − ⌈T/M⌉`` is the free budget right after epoch 0. A run that has spent its free
  budget faster than evenly over time becomes proportionally harder to move; one that spent
  less keeps the base thresholds. Unspent budget stays unspent: the future is unknown.

Every decision depends only on the trajectory up to that epoch and on numbers fixed when the
run was created (``N, M``, the thresholds, recorded in its config), so a resumed run decides as
an uninterrupted one does. ``Decider`` applies the rule to a model being trained (the
``should_checkpoint`` of ``tasks.training.train``). The rule imports nothing heavy: the
config and the command line read it without starting torch.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

SCHEDULES = ("fixed", "adaptive")  # RunConfig.schedule
# base thresholds, the change that earns a checkpoint over a floor interval: |Δ ln(test loss +
# LOSS_FLOOR)| (nats), |Δ test accuracy|, ‖θ − θ_c‖ / ‖θ_c‖
THRESHOLDS = (1.0, 0.03, 0.5)
CHANGES = ("test loss", "test accuracy", "parameters")  # the reasons a change gives, in that order
LOSS_FLOOR = 0.01  # nats: a test loss this small counts as solved
RATE = 0.25  # over e - c < M epochs a threshold shrinks by ((e - c)/M)^RATE
FLOOR_SHARE = 8  # the floor takes about 1/FLOOR_SHARE of the budget


def derived_floor(budget: int, final: int, every: int, forced: int = 0) -> int:
    """``M``, in epochs (a multiple of ``every``): about ``(budget - 2 - forced) / FLOOR_SHARE``
    floor checkpoints spread evenly over epochs ``0 .. final``."""
    floors = max(0, (budget - 2 - forced) // FLOOR_SHARE)
    span = max(1, math.ceil(final / (floors + 1)))
    return every * math.ceil(span / every)


@dataclass(frozen=True)
class Rule:
    """The adaptive rule's numbers; see the module docstring."""

    budget: int  # N: checkpoints at most, epoch 0 and the final one included
    final: int  # T = num_epochs - 1, always a checkpoint
    every: int  # the candidate grid: test_every
    floor: int  # M: at least one checkpoint every M epochs
    thresholds: tuple[float, float, float] = THRESHOLDS
    forced: tuple[int, ...] = ()  # epochs that are checkpoints whatever the rule says, sorted

    @classmethod
    def of(cls, cfg) -> "Rule":
        """The rule of an adaptive ``tasks.config.RunConfig``: its budget, floor, thresholds and
        checkpoint epochs (forced)."""
        return cls(cfg.checkpoints_max, cfg.num_epochs - 1, cfg.test_every, cfg.checkpoint_floor,
                   tuple(cfg.schedule_thresholds), tuple(sorted({0, *cfg.checkpoint_epochs})))

    def reserve(self, epoch: int) -> int:
        """Checkpoints owed after a checkpoint at ``epoch``: the floor's and the final one, plus
        the forced epochs strictly between."""
        owed = math.ceil((self.final - epoch) / self.floor) if epoch < self.final else 0
        between = bisect.bisect_left(self.forced, self.final) - bisect.bisect_right(self.forced, epoch)
        return owed + max(0, between)

    def scale(self, epoch: int, used: int) -> float:
        """``s(e)``: the factor on every threshold at ``epoch`` with ``used`` checkpoints taken
        (infinite when no free checkpoint is left)."""
        free = self.budget - used - self.reserve(epoch)
        if free < 1:
            return math.inf
        planned = (self.budget - 1 - math.ceil(self.final / self.floor)) * (self.final - epoch) / max(self.final, 1)
        return max(1.0, planned / free)

    def decide(self, epoch: int, used: int, last: int, changes: tuple[float, float, float]) -> str | None:
        """Why ``epoch`` is a checkpoint (``"forced"``, ``"floor"`` or one of ``CHANGES``), or None.
        ``used``: checkpoints taken before ``epoch``; ``last``: the latest of them; ``changes``:
        the three changes since ``last``, each measured as ``THRESHOLDS`` are (NaN counts as no
        change)."""
        i = bisect.bisect_left(self.forced, epoch)
        if epoch in (0, self.final) or (i < len(self.forced) and self.forced[i] == epoch):
            return "forced"
        if used + 1 + self.reserve(epoch) > self.budget:
            return None
        if epoch - last >= self.floor:
            return "floor"
        if epoch % self.every:
            return None
        scores = [c / t if c == c else 0.0 for c, t in zip(changes, self.thresholds)]
        best = max(range(len(scores)), key=scores.__getitem__)
        pace = ((epoch - last) / self.floor) ** RATE
        return CHANGES[best] if scores[best] >= self.scale(epoch, used) * pace else None


def window(test_acc, start: float = 0.1, end: float = 0.95) -> tuple[int, int] | None:
    """The generalisation window of a run's test accuracy series (shape (num_epochs,), NaN where
    not measured): ``(first epoch >= start, first epoch >= end)``, or None before ``end``."""
    measured = [(e, a) for e, a in enumerate(test_acc) if a == a]
    first = [next((e for e, a in measured if a >= level), None) for level in (start, end)]
    return None if first[1] is None else (first[0], first[1])


def ln_loss(loss: float) -> float:
    """The loss on the rule's scale: ``ln(loss + LOSS_FLOOR)``."""
    return math.log(loss + LOSS_FLOOR)


class Decider:
    """``should_checkpoint(epoch, measured, model)`` for ``tasks.training.train``: applies
    ``rule`` to the model being trained. ``measured`` is the epoch's (4,) series row (train
    loss, test loss, train accuracy, test accuracy); one host sync per call. The first epoch asked
    must be a checkpoint (epoch 0, or the checkpoint a run resumes from); ``used`` counts those
    before it."""

    def __init__(self, rule: Rule, used: int = 0):
        from tasks.model import trainable  # torch: only where a model trains

        self.rule, self.used, self.last, self.trainable = rule, used, None, trainable

    def __call__(self, epoch: int, measured, model) -> bool:
        params = [p.detach() for p in self.trainable(model).values()]
        if self.last is None:  # the first epoch asked
            reason = self.rule.decide(epoch, self.used, epoch, (0.0, 0.0, 0.0))
            if reason is None:
                raise ValueError(f"an adaptive schedule starts from a checkpoint; epoch {epoch} is none")
            values = measured[[1, 3]].tolist()
        else:
            last_epoch, last_loss, last_acc, last_params = self.last
            d2 = sum(((p - q) ** 2).sum() for p, q in zip(params, last_params))
            n2 = sum((q ** 2).sum() for q in last_params)
            row = measured.new_empty(3)
            row[0], row[1], row[2] = measured[1], measured[3], (d2 / n2).sqrt()
            loss, acc, distance = row.tolist()
            values = [loss, acc]
            changes = (abs(ln_loss(loss) - ln_loss(last_loss)), abs(acc - last_acc), distance)
            reason = self.rule.decide(epoch, self.used, last_epoch, changes)
        if reason is None:
            return False
        self.used += 1
        self.last = (epoch, *values, [p.clone() for p in params])
        return True
