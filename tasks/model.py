"""The one place that builds the model: a TransformerLens ``TransformerBridge`` with every bias
frozen at zero.

Weights are read through TransformerLens's names (``W_E, W_pos, W_Q, W_K, W_V, W_O, W_in,
W_out, W_U``) and activations through its hook names; ``tests/test_model.py`` pins both.
"""

from __future__ import annotations

import math

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tasks.config import RunConfig

WEIGHT_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")
# hooks named relative to a block, resolved per layer by ``hook_name`` (TransformerLens's
# ``get_act_name`` spelling): the MLP's activation, the attention pattern, and the residual
# stream after the block's attention (``resid_mid``) and after its MLP (``resid_post``)
MLP_POST = "mlp.hook_post"
ATTN_PATTERN = "attn.hook_pattern"
RESID_MID = "hook_resid_mid"
RESID_POST = "hook_resid_post"


def hook_name(hook: str, layer: int) -> str:
    """The full hook name of a block-relative hook in ``layer``: ``blocks.{layer}.{hook}``."""
    return f"blocks.{layer}.{hook}"


HOOK_POST = hook_name(MLP_POST, 0)
HOOK_PATTERN = hook_name(ATTN_PATTERN, 0)


# the output projections (W_O, W_out) by their parameters' names in the native model
OUTPUT_PROJECTIONS = ("attn._original_component.o._original_component.weight",
                      "mlp._original_component.fc_out._original_component.weight")


def tl_config(cfg: RunConfig) -> TransformerBridgeConfig:
    m = cfg.model
    return TransformerBridgeConfig(
        n_layers=m.n_layers, n_heads=m.n_heads, d_model=m.d_model, d_head=m.d_head,
        d_mlp=m.d_mlp, act_fn=m.act_fn, normalization_type=m.normalization_type,
        n_ctx=3, d_vocab=cfg.d_vocab, d_vocab_out=cfg.d_vocab_out,
        positional_embedding_type="standard", seed=cfg.seed,
        init_mode="gpt2" if m.init in ("legacy", "native", "nanda") else m.init,
    )


def build_model(cfg: RunConfig, device: str | torch.device = "cpu") -> TransformerBridge:
    """The seeded model (same initial weights whatever trainer runs), biases zero and frozen.

    Every scheme draws from TransformerLens's generator seeded with ``cfg.seed``, in its order.
    ``native`` is TransformerLens 4's ``gpt2`` init: N(0, (0.8/sqrt(d_model))^2), with W_O and
    W_out at 1/sqrt(2 n_layers) of that std. ``legacy`` is the same draw with W_O and W_out
    multiplied by sqrt(2 n_layers): every weight N(0, (0.8/sqrt(d_model))^2), as the legacy
    ``HookedTransformer`` drew them, and every other weight bit-identical to ``native``'s.
    ``nanda`` redraws every weight as the original code of Nanda et al. 2023 did,
    ``randn / sqrt(d_model)`` (W_U: ``/ sqrt(d_vocab)``), from a generator seeded with
    ``cfg.seed``, in parameter order."""
    model = TransformerBridge.boot_native(tl_config(cfg))
    redraw = torch.Generator().manual_seed(cfg.seed)
    for name, param in model.named_parameters():
        with torch.no_grad():
            if name.endswith(".bias"):
                param.zero_()
                param.requires_grad_(False)
            elif cfg.model.init == "legacy" and name.endswith(OUTPUT_PROJECTIONS):
                param.mul_(math.sqrt(2 * cfg.model.n_layers))
            elif cfg.model.init == "nanda" and param.ndim > 1:  # weights, not LayerNorm scales
                fan = cfg.d_vocab if name.startswith("head.") else cfg.model.d_model  # head: W_U
                param.copy_(torch.randn(param.shape, generator=redraw) / math.sqrt(fan))
    return model if str(device) == "cpu" else model.to(device)


def trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters that train, by their module path (biases excluded)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def weights(model: TransformerBridge) -> dict[str, torch.Tensor]:
    """The TransformerLens-named weights, detached, with the block weights stacked over layers.

    Shapes: W_E (d_vocab, d_model), W_pos (3, d_model), W_Q/W_K/W_V (layer, head, d_model,
    d_head), W_O (layer, head, d_head, d_model), W_in (layer, d_model, d_mlp), W_out (layer,
    d_mlp, d_model), W_U (d_model, d_vocab_out); with LayerNorm on, also the final LayerNorm's
    ``ln_final.w`` and ``ln_final.b`` (d_model,).
    """
    out = {name: getattr(model, name).detach() for name in WEIGHT_NAMES}
    if model.cfg.normalization_type is not None:
        out["ln_final.w"] = model.ln_final.weight.detach()
        out["ln_final.b"] = model.ln_final.bias.detach()
    return out
