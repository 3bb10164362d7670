"""Polynomial tasks of Power et al. 2022, on operands 0 .. p-1: no group law makes them a
group operation, so their analyses use the Fourier basis of Z_p over the residues as a
convention (``kind="residues"``: Fourier verdicts do not apply). Operands stay below p <= 1000,
so ``a³ + ab`` < 10^9 fits int64."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tasks.problems import Problem
from tasks.problems.basis import Basis, cyclic

RESIDUES = "residues (no group law of this task)"


def operands(p: int) -> tuple[int, ...]:
    return tuple(range(p))


@lru_cache(maxsize=None)
def basis(p: int) -> Basis:
    return cyclic(p, operands(p), RESIDUES, kind="residues")


def squares(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return (a * a + b * b) % p


def quadratic(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return (a * a + a * b + b * b) % p


def cubic(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return (a * a * a + a * b) % p


PROBLEMS = (
    Problem("x2+y2", "(a² + b²) mod p", "polynomial", operands, squares, basis),
    Problem("x2+xy+y2", "(a² + ab + b²) mod p", "polynomial", operands, quadratic, basis),
    Problem("x3+xy", "(a³ + ab) mod p", "polynomial", operands, cubic, basis),
)
