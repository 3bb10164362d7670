"""An exact fast forward for training: only what the ``=`` position's logits need, at any depth,
with or without LayerNorm.

The input is ``[a, b, =]`` and attention is causal, so position 0 only ever attends to itself:
at every layer its residual stream is a function of ``a`` alone, one row per token (a table of
p rows, gathered per pair). Position 1 is a function of ``b`` alone in layer 0's input (another
table) and of the pair after that; ``=`` is one vector in layer 0's input and per pair after
that. Every layer but the last computes positions 0..2 (the next layer's keys and values); the
last computes only ``=``. A one-layer model therefore runs no per-pair work but the ``=``
position's attention mixing, ``W_O``, the MLP and the unembedding. Where the query is one
vector (``=`` in layer 0), the scores of a token table are ``x W_K q`` per token, gathered per
pair; the pattern mixes the values in head space (``d_head`` wide) before the one ``W_O``
matmul, which measured 17% faster per eager step than mixing per-token OV outputs.

It reads and differentiates the bridge's own parameter tensors, so gradients land where the
optimiser expects them and checkpoints are the bridge's ``state_dict``; biases must be frozen at
zero (``tasks.model.build_model``). ``tests/test_fast.py`` shows logits, gradients and the
activations equal the TransformerLens forward's, whatever the task (``tasks.problems``: a task
only changes which pairs come in and their labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tasks import onednn
from tasks.config import RunConfig

_NATIVE = "._original_component."  # the bridge's prefix of the native module under each component


@dataclass(frozen=True)
class _At:
    """One position's vectors over the batch: ``x`` is per pair ``(B, ...)`` (``index`` None,
    ``const`` False), one vector ``(...)`` shared by every pair (``const``), or a token table
    ``(p, ...)`` whose row for each pair is ``index`` ``(B,)``."""

    x: torch.Tensor
    index: torch.Tensor | None = None
    const: bool = False

    def map(self, fn) -> "_At":
        return _At(fn(self.x), self.index, self.const)

    def pairs(self, n: int) -> torch.Tensor:
        """``(n, ...)``: the vector of every pair."""
        if self.index is not None:
            return self.x[self.index]
        return self.x.expand(n, *self.x.shape) if self.const else self.x

    @property
    def compact(self) -> bool:
        """One row per token or one in all (not per pair)."""
        return self.const or self.index is not None


class FastForward:
    """``logits(pairs)`` for pairs ``(B, 2)`` of ``(a, b)``; returns ``(B, d_vocab_out)``.
    ``run(pairs)`` also returns the activations at ``=``. ``matmul="torch"`` keeps the per-pair
    products on ``torch.matmul`` (a run trained so)."""

    def __init__(self, model: torch.nn.Module, cfg: RunConfig, matmul: str | None = None):
        params = dict(model.named_parameters())
        for name, prm in params.items():
            if name.endswith(".bias") and (prm.requires_grad or prm.abs().max() != 0):
                raise ValueError(f"the fast forward assumes frozen zero biases ({name})")

        def find(path: str) -> torch.nn.Parameter:
            return params[path.replace("/", _NATIVE) + _NATIVE + "weight"]

        m = cfg.model
        self.ln = m.normalization_type == "LN"
        layer = ("ln1", "attn/q", "attn/k", "attn/v", "attn/o", "ln2", "mlp/fc_in", "mlp/fc_out")
        self._weights = (
            find("tok_embed"),  # (d_vocab, d_model)
            find("pos"),  # (3, d_model)
            *(find(f"layers.{l}/{name}") for l in range(m.n_layers) for name in layer
              if self.ln or not name.startswith("ln")),  # q, k, v (H*dh, d_model); o (d_model, H*dh) ...
            *((find("ln_out"),) if self.ln else ()),  # (d_model,)
            find("head"),  # (d_vocab_out, d_model)
        )
        # matmul: "torch" keeps torch.matmul; otherwise oneDNN where it is available (tasks.onednn)
        linear = onednn.dense if matmul == "torch" else onednn.linear_for(self._weights[0])
        self._static = (cfg.p, m.n_heads, m.d_head, m.n_layers, m.act_fn,
                        model.cfg.eps if self.ln else None, linear)

    @property
    def weights(self) -> tuple[torch.Tensor, ...]:
        """The bridge's parameters the forward reads: ``W_E``, ``W_pos``, per layer (``ln1``),
        ``q, k, v, o``, (``ln2``), ``fc_in, fc_out``, then (``ln_final``) and ``W_U``, each as
        the native module stores it (``(d_out, d_in)`` for a linear map)."""
        return self._weights

    @property
    def static(self) -> tuple:
        """``(p, H, dh, n_layers, act_fn, eps, linear)``: the forward's arguments besides weights
        and pairs (``eps`` None: no LayerNorm)."""
        return self._static

    def logits(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.run(pairs)[0]

    def run(self, pairs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """See :func:`forward_at_eq`."""
        return forward_at_eq(self.weights, pairs, *self.static)


def _layer_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm over the last dimension, bias zero: ``(normalised * w, scale (..., 1))``."""
    x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return x / scale * w, scale


def forward_at_eq(weights: tuple[torch.Tensor, ...], pairs: torch.Tensor, p: int, H: int, dh: int,
                  n_layers: int, act_fn: str, eps: float | None = None, linear=onednn.dense,
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The fast forward as a pure function of the weights (so one compiled graph serves every
    model of a shape) for ``pairs (B, 2)``: ``(logits (B, d_vocab_out), acts)``, ``acts`` the
    values at ``=`` of TransformerLens's hooks, by hook name: ``blocks.0.hook_resid_pre``
    (B, d_model); per layer ``l``, ``blocks.{l}.attn.hook_pattern`` (B, head, 3),
    ``blocks.{l}.hook_attn_out``, ``blocks.{l}.hook_resid_mid``, ``blocks.{l}.hook_mlp_out``,
    ``blocks.{l}.hook_resid_post`` (B, d_model), ``blocks.{l}.mlp.hook_post`` (B, d_mlp); with
    LayerNorm (``eps`` given), ``ln_final.hook_scale`` (B, 1). ``weights``: as
    :attr:`FastForward.weights`; ``linear(x, w)`` is ``x @ w.T`` for the per-pair products
    (:func:`tasks.onednn.linear_for`); a token table's or one vector's products use ``@``."""
    W_E, W_pos, *blocks, w_u = weights
    ln = eps is not None
    per_layer = 8 if ln else 6
    n = len(pairs)
    a, b = pairs[:, 0], pairs[:, 1]

    def proj(at: _At, w: torch.Tensor) -> _At:
        return at.map(lambda x: x @ w.T) if at.compact else at.map(lambda x: linear(x, w))

    def norm(at: _At, w: torch.Tensor | None) -> _At:
        return at if w is None else at.map(lambda x: _layer_norm(x, w, eps)[0])

    def heads(at: _At) -> _At:  # (..., H*dh) -> (..., H, dh)
        return at.map(lambda x: x.unflatten(-1, (H, dh)))

    # the residual stream at positions 0, 1, 2: tokens a and b (tables), "=" (one vector)
    resid = [_At(W_E[:p] + W_pos[0], a), _At(W_E[:p] + W_pos[1], b), _At(W_E[p] + W_pos[2], const=True)]
    acts = {"blocks.0.hook_resid_pre": resid[2].pairs(n)}
    for layer in range(n_layers):
        ws = blocks[layer * per_layer:(layer + 1) * per_layer]
        ln1, w_q, w_k, w_v, w_o, ln2, w_in, w_out = ws if ln else (None, *ws[:4], None, *ws[4:])
        last = layer == n_layers - 1
        h = [norm(r, ln1) for r in resid]
        keys: dict[int, _At] = {}
        values: list[_At] = []  # computed after the first scores (the gradients then sum in a fixed order)
        mid = {}
        for i in (2,) if last else (1, 2):
            q = heads(proj(h[i], w_q)).map(lambda x: x / math.sqrt(dh))
            scores = []
            for j in range(i + 1):
                if q.const:  # x W_K q on the token table: (rows, H)
                    s = h[j].map(lambda x: torch.einsum("...d,hed,he->...h", x, w_k.view(H, dh, -1), q.x))
                else:
                    if j not in keys:
                        keys[j] = heads(proj(h[j], w_k))
                    k = keys[j]
                    s = (k.map(lambda x: (x * q.x).sum(-1)) if q.index is not None and q.index is k.index
                         else _At((q.pairs(n) * k.pairs(n)).sum(-1)))
                scores.append(s.pairs(n))
            pattern = torch.stack(scores, dim=-1).softmax(dim=-1)  # (B, H, i + 1)
            values = values or [heads(proj(x, w_v)) for x in h]
            z = pattern[..., 0, None] * values[0].pairs(n)  # (B, H, dh)
            for j in range(1, i + 1):
                z = z + pattern[..., j, None] * values[j].pairs(n)
            attn_out = linear(z.reshape(n, H * dh), w_o)  # (B, d_model)
            mid[i] = (resid[i].x if resid[i].const else resid[i].pairs(n)) + attn_out
        if not last:  # position 0 attends to itself alone
            mid = {0: resid[0].x + values[0].x.flatten(-2) @ w_o.T, **mid}
        for i, x in mid.items():  # "=" last
            at = _At(x, a) if i == 0 else _At(x)
            pre = proj(norm(at, ln2), w_in)  # (rows, d_mlp); ReLU in place: one buffer less, same bits
            post = pre.map(torch.relu_ if act_fn == "relu" else F.gelu)
            mlp_out = proj(post, w_out).x
            resid[i] = at.map(lambda x: x + mlp_out)
        acts.update({
            f"blocks.{layer}.attn.hook_pattern": pattern,
            f"blocks.{layer}.hook_attn_out": attn_out,
            f"blocks.{layer}.hook_resid_mid": mid[2],
            f"blocks.{layer}.mlp.hook_post": post.x,
            f"blocks.{layer}.hook_mlp_out": mlp_out,
            f"blocks.{layer}.hook_resid_post": resid[2].x,
        })
    out = resid[2].x
    if ln:
        out, acts["ln_final.hook_scale"] = _layer_norm(out, blocks[-1], eps)
    return linear(out, w_u), acts
