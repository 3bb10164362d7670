"""The MLP neurons' activations on the operand grid, stored as they are for viewing."""

from __future__ import annotations

import numpy as np
import torch

from tasks.analyses.probe import Probe
from tasks.model import MLP_POST


def neuron_activations(probe: Probe) -> dict[str, np.ndarray]:
    """neuron_activations (layer, neuron, a, b): each layer's neurons' activation at '=' over
    the operand grid, float16."""
    maps = [probe.on_grid(probe.layer_acts(MLP_POST, layer)) for layer in range(probe.n_layers)]
    return {"neuron_activations": torch.stack(maps).half().numpy()}
