"""A spare page for the next visit. Building a page's ~400 Bokeh models takes the server most of
a second before it can answer the request. Once a page has loaded, the server builds a spare
of it in the background; the next request for the same address (a reload, a shared link, a
second researcher) takes the spare and is answered at once, and a new spare is built after it.

A spare is taken only while what it was built from is unchanged (``stamp()``: the runs, the
run's analysed epochs, its training progress); otherwise the page is built afresh. It is built
outside any session: Panel's current document is a throwaway one, so nothing it does (a
URL update, a callback after load) reaches a live session. (Bokeh's own current document is
one for all threads; nothing in the page's build uses it: ``viz.curves`` gives HoloViews a
document of its own.)"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Hashable

from bokeh.document import Document
from panel.io.state import set_curdoc

log = logging.getLogger(__name__)
_builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdw-spare")
_lock = threading.Lock()
_slot: tuple[Hashable, Hashable, Any] | None = None  # (key, stamp, page): one spare at a time
_pending: tuple[Hashable, Future] | None = None  # the spare being built
_generation = 0  # raised by discard(): a spare begun before it is dropped when done
WAIT_S = 3.0  # at most this long for a spare being built: about what a fresh build takes


def take(key: Hashable, stamp: Callable[[], Hashable]) -> Any | None:
    """The spare built for ``key``, if its stamp is still current (it is then no longer spare).
    A spare for ``key`` still being built is waited for: it is ahead of a build started now."""
    global _slot
    with _lock:
        pending = _pending
    if pending is not None and pending[0] == key:
        wait([pending[1]], timeout=WAIT_S)  # on the server's event loop: briefly
    with _lock:
        if _slot is None or _slot[0] != key:
            return None  # a spare for another address stays for its own next visit
        slot, _slot = _slot, None
    return slot[2] if slot[1] == stamp() else None


def prepare(key: Hashable, stamp: Callable[[], Hashable], build: Callable[[], Any]) -> None:
    """Build a spare for ``key`` in the background (one build at a time; a request while one is
    being built is dropped: the spare in the making serves the next visit)."""
    global _pending
    with _lock:
        if _pending is not None:
            return
        _pending = key, _builder.submit(_build, key, stamp, build, _generation)


def settle(timeout: float = 60.0) -> None:
    """Wait for a spare being built (tests)."""
    _builder.submit(lambda: None).result(timeout)


def discard() -> None:
    """Drop the spare (the store was found damaged or gone: nothing read before may be reused)."""
    global _slot, _generation
    with _lock:
        _slot = None
        _generation += 1


def _build(key: Hashable, stamp: Callable[[], Hashable], build: Callable[[], Any], generation: int) -> None:
    global _slot, _pending
    try:
        with set_curdoc(Document()):
            made = (key, stamp(), build())
        with _lock:
            if generation == _generation:  # else discarded meanwhile: it read what was dropped
                _slot = made
    except Exception:  # a spare is only a head start: the next visit builds its own page
        log.exception("building a spare page failed")
    finally:
        with _lock:
            _pending = None
