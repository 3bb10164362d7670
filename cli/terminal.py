"""A one-line progress bar for the terminal: redrawn in place on a terminal (at most five times
a second), a plain line every ``every_s`` seconds otherwise (logs, CI, a worker's output)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Bar:
    def __init__(self, label: str, stream: TextIO | None = None, every_s: float = 10.0, width: int = 24):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = 0.2 if self.live else every_s
        self._last = float("-inf")
        self._shown = ""

    def line(self, fraction: float, text: str) -> str:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        return f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:5.1f}%  {text}"

    def update(self, fraction: float, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        shown = self.line(fraction, text)
        if self.live:
            pad = " " * max(0, len(self._shown) - len(shown))
            self.stream.write(f"\r{shown}{pad}")
        else:
            self.stream.write(shown + "\n")
        self.stream.flush()
        self._shown = shown

    def close(self, fraction: float, text: str) -> None:
        self.update(fraction, text, force=True)
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
