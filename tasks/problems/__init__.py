"""The tasks a run can learn ("problems"; ``tasks/`` already names the pipeline's steps), numpy
only so that the store and the command line read them without torch.

A problem is a binary operation on tokens ``0 .. p-1``, shown to the model as ``[a, b, =]``: its
operand values, the label of every pair, and the basis its analyses work in. Each family lives
in its own module (``cyclic``: the additive group Z_p; ``multiplicative``: the group of units,
over discrete logs; ``polynomial``: no group law) and enters ``PROBLEMS`` by one row; nothing in
:class:`Problem` itself is modular arithmetic, so a group task with its own irreducible
representations or a bit-string task fits the same three callables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tasks.problems.basis import Basis


@dataclass(frozen=True)
class Problem:
    """One task. ``operands(p)``: the operand values (each of a and b) in basis order;
    ``label(a, b, p)``: the answer's token for int arrays ``a``, ``b`` of one shape (same shape,
    int64); ``basis(p)``: the basis the analyses use, whose ``values`` are ``operands(p)``."""

    name: str  # the task knob's value: shell-friendly ("x2+y2")
    formula: str  # what --help shows: "(a + b) mod p"
    family: str  # the module that defines it: "cyclic", "multiplicative", "polynomial"
    operands: Callable[[int], tuple[int, ...]]
    label: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    basis: Callable[[int], Basis]


from tasks.problems import cyclic, multiplicative, polynomial  # noqa: E402  (they use Problem)

PROBLEMS: dict[str, Problem] = {
    problem.name: problem for family in (cyclic, multiplicative, polynomial) for problem in family.PROBLEMS
}


def get(name: str) -> Problem:
    """The problem called ``name``; an unknown name is a one-line ConfigError naming the choices."""
    from tasks.config import ConfigError  # here: tasks.config validates its presets with PROBLEMS

    if name not in PROBLEMS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(PROBLEMS)} (formulas: tdw run --help)")
    return PROBLEMS[name]


def choices() -> str:
    """Every task with its formula, one phrase: "add = (a + b) mod p, sub = ..."."""
    return ", ".join(f"{name} = {problem.formula}" for name, problem in PROBLEMS.items())
