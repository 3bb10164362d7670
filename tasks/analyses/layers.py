"""What each layer writes into the residual stream at '=': its frequencies, its direct share of
the correct answer's logit, and what the logits would be if the model stopped after it.

The residual stream at '=' (rows, d_model), in probe order, is read after each layer's
attention (``hook_resid_mid``, site ``attn``) and after its MLP (``hook_resid_post``, site
``mlp``); before layer 0 it is the '=' token's embedding, the same for every row. Layer l's
attention writes ``resid_mid[l] - resid_pre[l]`` and its MLP ``resid_post[l] - resid_mid[l]``,
with ``resid_pre[l] = resid_post[l - 1]``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from store.schema import SITES
from tasks.analyses.fourier import freq_energy
from tasks.analyses.probe import Probe
from tasks.analyses.progress import accuracy_from_logits, progress_from_logits
from tasks.model import RESID_MID, RESID_POST
from tasks.problems.basis import Basis

SITE_HOOKS = dict(zip(SITES, (RESID_MID, RESID_POST)))


def streams(probe: Probe) -> torch.Tensor:
    """(layer, site, rows, d_model), as the forward computed it (float32): the residual stream
    at '=' after each layer's attention and after its MLP."""
    return torch.stack([torch.stack([probe.layer_acts(SITE_HOOKS[site], layer) for site in SITES])
                        for layer in range(probe.n_layers)])


def writes(probe: Probe, resid: torch.Tensor) -> torch.Tensor:
    """(1 + layer·site, rows, d_model): what the embedding (part 0, broadcast over the rows),
    then each layer's attention and MLP in order wrote into the stream ``resid`` of
    ``streams``; they sum to the last layer's ``resid_post``."""
    flat = resid.flatten(0, 1)  # (layer·site, rows, d_model) in the order the model writes them
    embed = probe.resid_pre().to(flat.dtype).expand_as(flat[0])
    return torch.cat([embed[None], flat - torch.cat([embed[None], flat[:-1]])])


def residual_freq_share(maps: torch.Tensor, basis: Basis) -> np.ndarray:
    """``maps`` (d_model, a, b): one stream's coordinates on the operand grid in basis order ->
    (n//2,): the share of its variance over the inputs (summed over d_model, so any rotation
    of the stream gives the same) in each frequency's {const, cos k, sin k} block; shares sum
    to <= 1, the rest lying in products of two different frequencies. A stream that does not
    vary gets zeros."""
    block, total = freq_energy(maps, basis)
    whole = total.sum()
    return (block.sum(0) / whole).numpy() if whole > 0 else np.zeros(block.shape[1], dtype=np.float32)


def residual_frequencies(probe: Probe) -> dict[str, np.ndarray]:
    """resid_freq_share (layer, site, freq): ``residual_freq_share`` of the stream after each
    layer's attention and MLP."""
    resid = streams(probe)
    return {"resid_freq_share": np.stack([[residual_freq_share(probe.on_grid(s), probe.basis) for s in layer]
                                          for layer in resid])}


def direct_attribution(parts: torch.Tensor, labels: torch.Tensor, W_U: torch.Tensor, scale: torch.Tensor,
                       ln_w: torch.Tensor | None) -> torch.Tensor:
    """``parts`` (part, rows, d_model): what each part wrote into the final stream; ``labels``
    (rows,); ``W_U`` (d_model, classes); ``scale`` (rows, 1): the final LayerNorm's scale of each
    row's stream (ones without LayerNorm), ``ln_w`` its weight (None without). Returns (part,
    rows) float64: each part's share of the centred correct logit ``L[y] - mean_c L[c]``, in
    logits. A part is centred over d_model and divided by its row's scale as the LayerNorm
    does, so the parts sum to the centred logit exactly (biases are zero)."""
    x = parts.double()
    if ln_w is not None:
        x = (x - x.mean(-1, keepdim=True)) / scale.double() * ln_w.double()
    U = W_U.double()
    direction = (U - U.mean(1, keepdim=True))[:, labels].T  # (rows, d_model)
    return (x * direction).sum(-1)


def logit_attribution(probe: Probe) -> dict[str, np.ndarray]:
    """logit_attribution (layer, site): the mean over all rows of the centred correct logit
    each layer's attention and MLP write directly; logit_attribution_embed: the embedding's;
    correct_logit: the mean centred correct logit they sum to."""
    resid = streams(probe)
    final = resid[-1, -1]
    w = probe.weights
    by_part = direct_attribution(writes(probe, resid), probe.labels, w["W_U"].cpu(), probe.ln_scale(final),
                                 w["ln_final.w"].cpu() if "ln_final.w" in w else None).mean(1)  # (part,)
    return {
        "logit_attribution": by_part[1:].reshape(probe.n_layers, len(SITES)).numpy(),
        "logit_attribution_embed": np.array(by_part[0].item()),
        "correct_logit": np.array(by_part.sum().item()),
    }


def lens_logits(probe: Probe) -> list[torch.Tensor]:
    """Per layer, (rows, classes) float64: the logits of the stream after that layer's MLP,
    unembedded through the final LayerNorm (when on) as if it were the last layer."""
    return [probe.unembed(probe.layer_acts(RESID_POST, layer)) for layer in range(probe.n_layers)]


def logit_lens(probe: Probe) -> dict[str, np.ndarray]:
    """logit_lens_loss (layer, split): the float64 cross-entropy of each layer's lens logits on
    the train split, the test split and all pairs; logit_lens_accuracy (layer, split)."""
    splits = (probe.train_idx, probe.test_idx, torch.arange(len(probe.labels)))
    losses, accs = [], []
    for logits in lens_logits(probe):
        losses.append([F.cross_entropy(logits[rows], probe.labels[rows]).item() for rows in splits])
        accs.append(accuracy_from_logits(logits, probe.labels, probe.train_idx, probe.test_idx)["checkpoint_accuracy"])
    return {"logit_lens_loss": np.array(losses), "logit_lens_accuracy": np.stack(accs)}


def logit_lens_progress(probe: Probe, key_freqs: list[int]) -> dict[str, np.ndarray]:
    """logit_lens_restricted_loss (layer, split) and logit_lens_excluded_loss (layer): the
    restricted and excluded loss (``progress_from_logits``) of each layer's lens logits: the
    layer at which the key frequencies' ``cos(w_k(a + b - c))`` becomes readable."""
    measures = [progress_from_logits(logits, probe.labels, probe.label_positions, probe.basis, key_freqs,
                                     probe.train_idx, probe.test_idx) for logits in lens_logits(probe)]
    return {"logit_lens_restricted_loss": np.stack([m["restricted_loss"] for m in measures]),
            "logit_lens_excluded_loss": np.array([m["excluded_loss"] for m in measures])}
