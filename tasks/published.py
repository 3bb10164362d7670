"""Published grokking times at the canonical settings (p = 113, data seed 598, AdamW lr 1e-3,
weight decay 1, betas (0.9, 0.98), training fraction 0.3, full batch, the 1-layer model of
Nanda et al. 2023), for comparing a run's with them (``tdw report``, ``bench/grokking_seeds.py``).
The workbench's own distribution over model seeds, per initialisation, is in docs/benchmarks.md."""

from __future__ import annotations

from tasks.config import RunConfig, preset

GROKKING = (
    ("Nanda et al. 2023 (one run)", "cleanup ends near 13,300"),
    ("TransformerLens grokking demo (one run)", "~14,000"),
    ("GROKVERSE, 10 seeds of the same setup", "5,625 - 10,275, median 7,588"),
)


def comparable(cfg: RunConfig) -> bool:
    """Whether ``cfg`` trains the canonical setup, whatever its model seed and initialisation
    (the published times are of that setup)."""
    return cfg.run_id == preset("canonical", seed=cfg.seed, init=cfg.model.init).run_id
