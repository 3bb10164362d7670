"""The one place that builds the model: a TransformerLens ``TransformerBridge`` with every bias
frozen at zero.

Weights are read through TransformerLens's names (``W_E, W_pos, W_Q, W_K, W_V, W_O, W_in,
W_out, W_U``) and activations through its hook names; ``tests/test_model.py`` pins both.
"""

from __future__ import annotations

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tasks.config import RunConfig

WEIGHT_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "W_U")
HOOK_POST = "blocks.0.mlp.hook_post"
HOOK_PATTERN = "blocks.0.attn.hook_pattern"


def tl_config(cfg: RunConfig) -> TransformerBridgeConfig:
    m = cfg.model
    return TransformerBridgeConfig(
        n_layers=m.n_layers, n_heads=m.n_heads, d_model=m.d_model, d_head=m.d_head,
        d_mlp=m.d_mlp, act_fn=m.act_fn, normalization_type=m.normalization_type,
        n_ctx=3, d_vocab=cfg.d_vocab, d_vocab_out=cfg.d_vocab_out,
        positional_embedding_type="standard", seed=cfg.seed,
    )


def build_model(cfg: RunConfig, device: str | torch.device = "cpu") -> TransformerBridge:
    """The seeded model (same initial weights whatever trainer runs), biases zero and frozen."""
    model = TransformerBridge.boot_native(tl_config(cfg))
    for name, param in model.named_parameters():
        if name.endswith(".bias"):
            with torch.no_grad():
                param.zero_()
            param.requires_grad_(False)
    return model if str(device) == "cpu" else model.to(device)


def trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters that train, by their module path (biases excluded)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def weights(model: TransformerBridge) -> dict[str, torch.Tensor]:
    """The TransformerLens-named weights of layer 0, detached.

    Shapes: W_E (d_vocab, d_model), W_pos (3, d_model), W_Q/W_K/W_V (head, d_model, d_head),
    W_O (head, d_head, d_model), W_in (d_model, d_mlp), W_out (d_mlp, d_model),
    W_U (d_model, d_vocab_out).
    """
    out = {}
    for name in WEIGHT_NAMES:
        w = getattr(model, name).detach()
        out[name] = w[0] if name in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out") else w
    return out
