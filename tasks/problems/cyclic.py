"""Tasks on the additive group Z_p: addition and subtraction mod p, on operands 0 .. p-1,
analysed in the Fourier basis of Z_p over the residues (for subtraction the logit terms are
``cos(w_k(a - b - c))``)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tasks.problems import Problem
from tasks.problems.basis import Basis, cyclic


def operands(p: int) -> tuple[int, ...]:
    """0 .. p-1: the residues, in their own order."""
    return tuple(range(p))


@lru_cache(maxsize=None)
def basis(p: int) -> Basis:
    return cyclic(p, operands(p), f"Fourier basis of Z_{p}")


def add(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return (a + b) % p


def sub(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return (a - b) % p  # numpy's % takes the divisor's sign: in 0 .. p-1


PROBLEMS = (
    Problem("add", "(a + b) mod p", "cyclic", operands, add, basis),
    Problem("sub", "(a − b) mod p", "cyclic", operands, sub, basis),
)
