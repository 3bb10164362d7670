"""An exact fast forward for training: only what the last-position loss needs.

The query sits at the fixed ``=`` token and position 2, so it is one vector per head; keys and
values depend on one token each. Per-token tables (p rows) replace the full 3-position forward:
attention scores and values are computed once per token, then gathered per pair; the pattern
mixes the values in head space (``d_head`` wide) before the one ``W_O`` matmul, which measured
17% faster per eager step than mixing per-token OV outputs (``d_model`` wide per head) and the
same when compiled. Only the ``=`` position runs the MLP and the unembedding. It reads and
differentiates the bridge's own parameter tensors, so gradients land where the optimiser
expects them and checkpoints are the bridge's ``state_dict``. ``tests/test_fast.py`` shows logits and gradients match the
TransformerLens forward. Applies to 1-layer models without LayerNorm (biases frozen at zero),
whatever the task (``tasks.problems``: a task only changes which pairs come in and their labels);
anything else uses the bridge forward.
"""

from __future__ import annotations

import math

import torch

from tasks import onednn
from tasks.config import RunConfig


def applies(cfg: RunConfig) -> bool:
    return cfg.model.n_layers == 1 and cfg.model.normalization_type is None


class FastForward:
    """``logits(pairs)`` for pairs ``(B, 2)`` of ``(a, b)``; returns ``(B, d_vocab_out)``.
    ``matmul="torch"`` keeps the per-pair products on ``torch.matmul`` (a run trained so)."""

    def __init__(self, model: torch.nn.Module, cfg: RunConfig, matmul: str | None = None):
        if not applies(cfg):
            raise ValueError("the fast forward needs 1 layer and no LayerNorm")
        params = dict(model.named_parameters())

        def find(suffix: str) -> torch.nn.Parameter:
            (name,) = [n for n in params if n.endswith(suffix)]
            return params[name]

        for name, prm in params.items():
            if name.endswith(".bias") and (prm.requires_grad or prm.abs().max() != 0):
                raise ValueError(f"the fast forward assumes frozen zero biases ({name})")
        self.W_E = find("tok_embed._original_component.weight")  # (d_vocab, d_model)
        self.W_pos = find("pos._original_component.weight")  # (3, d_model)
        self.q = find("attn._original_component.q._original_component.weight")  # (H*dh, d_model)
        self.k = find("attn._original_component.k._original_component.weight")
        self.v = find("attn._original_component.v._original_component.weight")
        self.o = find("attn._original_component.o._original_component.weight")  # (d_model, H*dh)
        self.w_in = find("fc_in._original_component.weight")  # (d_mlp, d_model)
        self.w_out = find("fc_out._original_component.weight")  # (d_model, d_mlp)
        self.w_u = find("head._original_component.weight")  # (d_vocab_out, d_model)
        self.p, self.H, self.dh = cfg.p, cfg.model.n_heads, cfg.model.d_head
        self.act_fn = cfg.model.act_fn
        # matmul: "torch" keeps torch.matmul; otherwise oneDNN where it is available (tasks.onednn)
        self.linear = onednn.dense if matmul == "torch" else onednn.linear_for(self.W_E)

    @property
    def weights(self) -> tuple[torch.Tensor, ...]:
        return (self.W_E, self.W_pos, self.q, self.k, self.v, self.o, self.w_in, self.w_out, self.w_u)

    @property
    def static(self) -> tuple:
        """``(p, H, dh, act_fn, linear)``: the forward's arguments besides weights and pairs."""
        return self.p, self.H, self.dh, self.act_fn, self.linear

    def logits(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.run(pairs)[0]

    def run(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits (B, d_vocab_out), pattern (B, head, 3), post (B, d_mlp))`` at '=': the
        values of ``hook_pattern[:, :, -1]`` and ``mlp.hook_post[:, -1]`` in the bridge."""
        return forward_at_eq(self.weights, pairs, *self.static)


def forward_at_eq(weights: tuple[torch.Tensor, ...], pairs: torch.Tensor, p: int, H: int, dh: int,
                  act_fn: str, linear=onednn.dense) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fast forward as a pure function of the weights (so one compiled graph serves every
    model of a shape): ``(logits, pattern, post)`` at '=' for ``pairs (B, 2)``. ``linear(x, w)``
    is ``x @ w.T`` for the four per-pair products (:func:`tasks.onednn.linear_for`)."""
    W_E, W_pos, w_q, w_k, w_v, w_o, w_in, w_out, w_u = weights
    x_a = W_E[:p] + W_pos[0]  # (p, d_model): token t at position 0
    x_b = W_E[:p] + W_pos[1]  # (p, d_model): token t at position 1
    x_eq = W_E[p] + W_pos[2]  # (d_model,): "=" at position 2
    q = (x_eq @ w_q.T).view(H, dh) / math.sqrt(dh)  # (H, dh)
    # per-token attention scores from "=", (p, H), and values, (p, H, dh)
    w_k = w_k.view(H, dh, -1)
    s_a = torch.einsum("td,hed,he->th", x_a, w_k, q)
    s_b = torch.einsum("td,hed,he->th", x_b, w_k, q)
    s_eq = torch.einsum("d,hed,he->h", x_eq, w_k, q)
    v_a, v_b = (x_a @ w_v.T).view(p, H, dh), (x_b @ w_v.T).view(p, H, dh)
    v_eq = (x_eq @ w_v.T).view(H, dh)

    a, b = pairs[:, 0], pairs[:, 1]
    scores = torch.stack([s_a[a], s_b[b], s_eq.expand(len(a), H)], dim=-1)  # (B, H, 3)
    pattern = scores.softmax(dim=-1)
    z = pattern[..., 0, None] * v_a[a] + pattern[..., 1, None] * v_b[b] + pattern[..., 2, None] * v_eq
    attn_out = linear(z.reshape(len(a), H * dh), w_o)  # (B, d_model)
    resid_mid = x_eq + attn_out
    pre = linear(resid_mid, w_in)  # (B, d_mlp); ReLU in place: one (B, d_mlp) buffer less, same bits
    post = pre.relu_() if act_fn == "relu" else torch.nn.functional.gelu(pre)
    resid_post = resid_mid + linear(post, w_out)
    return linear(resid_post, w_u), pattern, post
