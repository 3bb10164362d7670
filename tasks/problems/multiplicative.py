"""Tasks on the multiplicative group of units mod p, cyclic of order n = p - 1: multiplication
and division mod p on operands 1 .. p-1 (0 has no inverse and is left out). With g the smallest
primitive root, ``a = g^i`` and ``b = g^j`` give ``a·b = g^(i+j mod n)`` and
``a/b = g^(i-j mod n)``: the tasks are addition and subtraction on the discrete logs, so the
operands are listed in log order ``g^0, g^1, ..., g^(n-1)`` and analysed in the Fourier basis of
Z_n over those positions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tasks.problems import Problem
from tasks.problems.basis import Basis, cyclic


def prime_factors(n: int) -> list[int]:
    """The distinct prime factors of ``n >= 1``, increasing."""
    factors, f = [], 2
    while f * f <= n:
        if n % f == 0:
            factors.append(f)
            while n % f == 0:
                n //= f
        f += 1
    return factors + ([n] if n > 1 else [])


@lru_cache(maxsize=None)
def primitive_root(p: int) -> int:
    """The smallest generator g of the units mod the prime ``p``: ``g^((p-1)/q) != 1`` for
    every prime q dividing p - 1."""
    if p == 2:
        return 1
    factors = prime_factors(p - 1)
    return next(g for g in range(2, p) if all(pow(g, (p - 1) // q, p) != 1 for q in factors))


@lru_cache(maxsize=None)
def operands(p: int) -> tuple[int, ...]:
    """``(g^0, g^1, ..., g^(p-2)) mod p``: every unit once, in discrete-log order."""
    g, powers = primitive_root(p), [1]
    for _ in range(p - 2):
        powers.append(powers[-1] * g % p)
    return tuple(powers)


@lru_cache(maxsize=None)
def log_table(p: int) -> np.ndarray:
    """``table[x]`` = the discrete log base g of the unit x (``g^table[x] = x mod p``); shape
    (p,), int64; ``table[0] = -1`` (0 has none)."""
    table = np.full(p, -1, dtype=np.int64)
    table[list(operands(p))] = np.arange(p - 1)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=None)
def inverse_table(p: int) -> np.ndarray:
    """``table[x] = x⁻¹ mod p`` for units x; shape (p,), int64; ``table[0] = 0``."""
    table = np.array([pow(x, p - 2, p) for x in range(p)], dtype=np.int64)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=None)
def basis(p: int) -> Basis:
    g = primitive_root(p)
    return cyclic(p - 1, operands(p), f"Fourier basis of Z_{p - 1} over discrete logs base {g}", generator=g)


def mul(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return a * b % p


def div(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return a * inverse_table(p)[b] % p


PROBLEMS = (
    Problem("mul", "(a · b) mod p", "multiplicative", operands, mul, basis),
    Problem("div", "(a · b⁻¹) mod p", "multiplicative", operands, div, basis),
)
