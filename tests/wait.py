"""Waiting in tests: on a condition, with a timeout, never for a fixed time."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, *, interval: float = 0.05,
             what: str | Callable[[], str] = "the condition") -> T:
    """Call ``condition()`` every ``interval`` seconds until it returns something true, and
    return that. After ``timeout`` seconds, fail with an ``AssertionError`` naming ``what`` (a
    string, or a function called then, e.g. for a log's tail). A condition that can tell the
    wait is hopeless (the process it waits on exited) raises, and that ends the wait at once."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what() if callable(what) else what}")
        time.sleep(interval)
    return value
