"""Where a run's dynamics move, found from its stored series (numpy only), and a zoom plan that
densifies those windows within a budget (``tdw zoom RUN --auto``).

Each detector reads the per-epoch series (``train_loss``, ``test_loss``, ``test_acc``; NaN where
not measured) as trained so far and returns windows ``[start, end]`` in epochs, with why:

- **generalisation**: test accuracy rises from 10 % to 95 % of the way from its level at the
  test-loss peak (the memorised model) to its best;
- **cleanup**: after that, where log10 test loss falls fastest (its steepest slope, extended
  while the slope stays above a quarter of it; the memorising solution cleaned up);
- **loss spike**: train loss more than ``SPIKE_DECADES`` decades above its running minimum,
  until it is back within that;
- **second descent**: a later peak of the (smoothed) log10 test loss at least ``PEAK_DECADES``
  above the minimum before it, through its fall back to that minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPIKE_DECADES = 1.0  # a loss spike: train loss 10x its running minimum
PEAK_DECADES = 0.5  # a second descent: test loss rose >= ~3x before falling again


@dataclass(frozen=True)
class Window:
    kind: str
    start: int
    end: int
    why: str

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _measured(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` where measured (not NaN)."""
    epochs = np.flatnonzero(np.isfinite(values))
    return epochs, values[epochs]


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Running median over ``width`` samples (odd), edges padded with the edge values."""
    width = max(1, width | 1)
    if width == 1 or len(values) < width:
        return values
    padded = np.pad(values, width // 2, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)


def generalisation(series: dict[str, np.ndarray]) -> list[Window]:
    epochs, acc = _measured(series["test_acc"])
    loss_epochs, loss = _measured(series["test_loss"])
    if len(acc) < 3 or len(loss) < 3:
        return []
    peak = loss_epochs[np.argmax(loss)]
    low, high = acc[epochs >= peak][0], acc.max()
    if high - low < 0.2:  # no rise worth the name
        return []
    after = epochs >= peak
    onset = epochs[after & (acc >= low + 0.1 * (high - low))][0]
    end = epochs[after & (acc >= low + 0.95 * (high - low))][0]
    return [Window("generalisation", int(onset), int(end),
                   f"test accuracy {low + 0.1 * (high - low):.2f} -> {low + 0.95 * (high - low):.2f} "
                   f"(from {low:.2f} at the test-loss peak, epoch {peak}, to its best {high:.2f})")]


def cleanup(series: dict[str, np.ndarray], after: int) -> list[Window]:
    epochs, loss = _measured(series["test_loss"])
    keep = epochs >= after
    epochs, logs = epochs[keep], np.log10(np.maximum(loss[keep], 1e-300))
    if len(logs) < 5:
        return []
    smooth = _smooth(logs, len(logs) // 50)
    rate = -np.gradient(smooth, epochs)  # decades per epoch, falling > 0
    steepest = int(np.argmax(rate))
    fast = rate >= 0.25 * rate[steepest]
    start, end = steepest, steepest
    while start > 0 and fast[start - 1]:
        start -= 1
    while end < len(rate) - 1 and fast[end + 1]:
        end += 1
    if smooth[start] - smooth[end] < 1.0:  # no cliff of a decade or more
        return []
    return [Window("cleanup", int(epochs[start]), int(epochs[end]),
                   f"test loss falls fastest here, 1e{smooth[start]:.1f} -> 1e{smooth[end]:.1f} "
                   f"(at least a quarter of its steepest rate)")]


def _excursions(logs: np.ndarray, height: float, within: float) -> list[tuple[int, int, int]]:
    """Rises of ``logs`` above its running minimum that reach ``height``: ``(first index above
    it by a tenth of height, index of the top, first index after the top back within
    ``within`` of it)``; the last is ``len(logs)`` for a rise that never comes back."""
    excess = logs - np.minimum.accumulate(logs)
    above = np.flatnonzero(excess > 0.1 * height)
    out = []
    for run in np.split(above, np.flatnonzero(np.diff(above) > 1) + 1) if len(above) else []:
        if excess[run].max() >= height:
            top = int(run[np.argmax(excess[run])])
            back = np.flatnonzero(excess[top:] <= within)
            out.append((int(run[0]), top, top + int(back[0]) if len(back) else len(logs)))
    return out


def spikes(series: dict[str, np.ndarray]) -> list[Window]:
    epochs, loss = _measured(series["train_loss"])
    logs = np.log10(np.maximum(loss, 1e-300))
    out = []
    for start, top, back in _excursions(logs, SPIKE_DECADES, SPIKE_DECADES):
        rise = logs[top] - np.minimum.accumulate(logs)[top]
        out.append(Window("loss spike", int(epochs[max(start - 1, 0)]), int(epochs[min(back, len(epochs) - 1)]),
                          f"train loss rose {10 ** rise:.0f}x above its running minimum at epoch {epochs[top]}"))
    return out


def second_descents(series: dict[str, np.ndarray]) -> list[Window]:
    epochs, loss = _measured(series["test_loss"])
    if len(loss) < 5:
        return []
    logs = _smooth(np.log10(np.maximum(loss, 1e-300)), len(loss) // 100)
    first = int(np.argmax(logs))  # the memorisation peak: what follows it is the first descent
    out = []
    for _, top, back in _excursions(logs[first:], PEAK_DECADES, 0.1 * PEAK_DECADES):
        if first + back < len(logs):  # it fell back: a descent (a final rise is none)
            out.append(Window("second descent", int(epochs[first + top]), int(epochs[first + back]),
                              f"test loss rose again to 1e{logs[first + top]:.1f} at epoch "
                              f"{epochs[first + top]} and fell back by epoch {epochs[first + back]}"))
    return out


def find(series: dict[str, np.ndarray]) -> list[Window]:
    """Every window found, in order of the epochs."""
    found = generalisation(series)
    found += cleanup(series, found[0].end if found else 0)
    found += spikes(series) + second_descents(series)
    return sorted(found, key=lambda w: (w.start, w.end))


def spread(start: int, stop: int, count: int) -> list[int]:
    """``count`` epochs evenly inside ``start..stop`` (ends included only when every epoch of
    the range is asked for), rounded, without repeats."""
    if count >= stop - start:
        return list(range(start, stop + 1))
    return sorted({int(e) for e in np.round(np.linspace(start, stop, count + 2)[1:-1])})


def densify(windows: list[Window], budget: int, existing: set[int]) -> dict[Window, list[int]]:
    """New epochs per window, ``budget`` in all, shared in proportion to each window's length
    (at least one each while the budget lasts), spread evenly inside it, existing checkpoints
    and epochs already picked left out."""
    total = sum(w.length for w in windows)
    taken, plan = set(existing), {}
    for w in windows:
        n = min(max(1, round(budget * w.length / total)) if total else 0, budget - sum(map(len, plan.values())))
        picks = spread(w.start, w.end, n) if n > 0 else []
        plan[w] = [e for e in picks if e not in taken]
        taken.update(plan[w])
    return plan
