"""Speed without changing the mathematics: the allocator and the compile policy.

Measured on the 2-core CPU (``bench/train_speed.py``, p = 113, one thread):
- glibc returns big blocks to the OS after every step and page-faults them back in the next
  one; keeping them mapped takes the eager step from ~85 to ~66 ms and the compiled one from
  ~58 to ~52 ms (:func:`tune_allocator`);
- ``torch.compile`` of the loss (fast forward, float64 cross-entropy, accuracy) fuses the
  gathers and elementwise work around the matmuls: ~70 -> ~52 ms a step, for ~10-25 s of
  compilation once per process (cached on disk between processes);
- the per-pair products go through oneDNN's float32 matmul, which :mod:`tasks.onednn` checks
  against float64 at start-up (on the AMD EPYC it runs ~2.2x MKL's AVX2 path: a compiled step ~62 -> ~38
  ms). Lowering matmul precision (``torch.backends.mkldnn.matmul.fp32_precision``
  = ``bf16``) is never done.
Compiled and eager steps compute the same function to float32 rounding (``tests/test_fast.py``);
a run uses one of them throughout, chosen from its config, so a resumed run stays bit-identical.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

from tasks.config import RunConfig

COMPILE_MODES = ("auto", "on", "off")
COMPILE_MIN_EPOCHS = 5_000  # below this on CPU, compiling costs more time than it saves


@functools.cache
def tune_allocator() -> bool:
    """Keep freed memory mapped (glibc only), so a step's big temporaries are not page-faulted
    back in on every step; once per process (the trainer calls it). Returns whether it applied."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, (1 << 31) - 1))


def should_compile(cfg: RunConfig, device: torch.device, mode: str = "auto") -> bool:
    """``on``/``off`` as asked; ``auto``: on GPUs, and on CPUs for runs of at least
    ``COMPILE_MIN_EPOCHS`` epochs. Depends only on the config and device, never on where a
    resumed run starts, so a run's steps are computed the same way before and after a kill."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    return device.type == "cuda" or cfg.num_epochs >= COMPILE_MIN_EPOCHS
