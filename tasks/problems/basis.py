"""A task's analysis basis: the real Fourier basis of a cyclic group Z_n laid over the operand
values (numpy only, so the store and the command line import it without torch).

Position ``i`` of the basis stands for the token ``values[i]``: ``values = (0, 1, ..., p-1)``
for Z_p over residues; ``(g^0, g^1, ..., g^(n-1)) mod p`` for Z_(p-1) over discrete logs base g,
where multiplication of tokens is addition of positions. ``kind`` says whether the group is the
task's own (``"fourier"``: Fourier verdicts apply) or a convention (``"residues"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Basis:
    kind: str  # "fourier" (the task's group law: Fourier verdicts apply) | "residues"
    description: str  # e.g. "Fourier basis of Z_113"
    n: int  # the basis's size = the number of operand values
    values: tuple[int, ...]  # the token value at each basis position, in basis order
    generator: int | None = None  # g for the discrete-log basis, else None

    def __post_init__(self):
        if self.n < 3 or len(self.values) != self.n or len(set(self.values)) != self.n:
            raise ValueError(f"a basis needs n >= 3 distinct values, got n={self.n}, {len(self.values)} values")

    @cached_property
    def matrix(self) -> np.ndarray:
        """Orthonormal (n, n) float64 rows over basis positions x = 0..n-1: row 0 constant
        ``1/sqrt(n)``; rows ``2k-1, 2k`` are ``cos(2*pi*k*x/n)``, ``sin(2*pi*k*x/n)`` for
        k = 1..(n-1)//2; for even n a last row ``cos(pi*x)`` (alternating ±1/sqrt(n)), the top
        frequency n/2, whose sine is identically zero."""
        x = np.arange(self.n, dtype=np.float64)
        rows = [np.ones(self.n)]
        for k in range(1, (self.n - 1) // 2 + 1):
            rows += [np.cos(2 * np.pi * k * x / self.n), np.sin(2 * np.pi * k * x / self.n)]
        if self.n % 2 == 0:
            rows.append(np.where(np.arange(self.n) % 2 == 0, 1.0, -1.0))
        basis = np.stack(rows)
        basis = basis / np.sqrt((basis**2).sum(axis=1, keepdims=True))
        basis.flags.writeable = False
        return basis

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """Row names: ``("const", "cos 1", "sin 1", ..., ["cos n/2"])``."""
        names = ["const"]
        for k in range(1, (self.n - 1) // 2 + 1):
            names += [f"cos {k}", f"sin {k}"]
        if self.n % 2 == 0:
            names.append(f"cos {self.n // 2}")
        return tuple(names)

    @property
    def freqs(self) -> tuple[int, ...]:
        """The frequencies k = 1 .. n//2."""
        return tuple(range(1, self.n // 2 + 1))

    def rows(self, k: int) -> tuple[int, ...]:
        """The matrix rows of frequency k: ``(2k-1, 2k)``, or ``(n-1,)`` for k = n/2 with n even."""
        if not 1 <= k <= self.n // 2:
            raise ValueError(f"frequency {k} is outside 1..{self.n // 2}")
        return (self.n - 1,) if 2 * k == self.n else (2 * k - 1, 2 * k)

    @cached_property
    def _positions(self) -> np.ndarray:
        table = np.full(max(self.values) + 1, -1, dtype=np.int64)
        table[list(self.values)] = np.arange(self.n)
        return table

    def position(self, tokens) -> np.ndarray:
        """Token values (any int array shape) -> their basis positions; -1 for a token outside
        the basis (e.g. 0 in the discrete-log basis)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        inside = (tokens >= 0) & (tokens < len(self._positions))
        return np.where(inside, self._positions[np.where(inside, tokens, 0)], -1)


def cyclic(n: int, values, description: str, generator: int | None = None, kind: str = "fourier") -> Basis:
    """The Fourier basis of Z_n over ``values`` (the token at each position, in basis order)."""
    return Basis(kind=kind, description=description, n=n, values=tuple(int(v) for v in values),
                 generator=generator)
