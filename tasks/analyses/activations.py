"""The MLP neurons' activations on the operand grid, stored as they are for viewing."""

from __future__ import annotations

import numpy as np

from tasks.analyses.probe import Probe
from tasks.model import HOOK_POST


def neuron_activations(probe: Probe) -> dict[str, np.ndarray]:
    """neuron_activations (neuron, a, b): each neuron's post-ReLU activation at '=' over the
    operand grid, float16."""
    return {"neuron_activations": probe.on_grid(probe.acts(HOOK_POST)).half().numpy()}
