"""Views over training of what each layer does, one curve per layer (colour: the layer; a solid
line after the layer's MLP, dashed after its attention): which layer builds the key
frequencies into the residual stream at '=', how much of the correct answer's logit each part
writes directly, and how well the stream after each layer already reads out (logit lens). Each
is a pure function of the run -> HoloViews element, reading ``viz.data``; a 1-layer run draws
one curve per part as well."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from viz import data
from viz.plots import HEIGHT, WIDTH
from viz.progress import COLORS

SITE_NAMES = {"attn": "attention", "mlp": "MLP"}
SITE_DASH = {"attn": "dashed", "mlp": "solid"}
TOP = 5  # frequencies summed when the key frequencies are not chosen yet


def _labels(root: str, run_id: str, dim: str) -> list[str]:
    return [str(v) for v in data.coord(root, run_id, dim)]


def _overlay(curves: list, title: str, ylabel: str, logy: bool = False, ylim=None) -> hv.Overlay:
    opts = dict(width=WIDTH + 150, height=HEIGHT, tools=["hover"], line_width=1.8, logy=logy)
    if ylim is not None:
        opts["ylim"] = ylim
    return hv.Overlay(curves or [hv.Curve([], "epoch", ylabel)]).opts(
        hv.opts.Curve(**opts), hv.opts.Overlay(title=title, legend_position="right", logy=logy))


def share_frequencies(root: str, run_id: str) -> tuple[list[int], str]:
    """The frequencies whose summed share the residual view draws, and how they were chosen:
    the run's key frequencies, or before they are chosen the ``TOP`` strongest in the stream
    after the last layer's MLP at the last analysed checkpoint."""
    keys = data.key_frequencies(root, run_id)[0]
    if keys:
        return [int(k) for k in keys], "key frequencies"
    epochs, share = data.measure(root, run_id, "resid_freq_share")  # (epoch, layer, site, freq)
    if not len(epochs):
        return [], "no frequencies"
    freqs = data.coord(root, run_id, "freq")
    return [int(freqs[i]) for i in np.argsort(-share[-1, -1, -1])[:TOP]], f"top {TOP} at the end"


def residual_shares(root: str, run_id: str) -> hv.Overlay:
    """Share of the residual stream's variance over the inputs that lies in the chosen
    frequencies (``share_frequencies``), after each layer's attention and MLP."""
    epochs, share = data.measure(root, run_id, "resid_freq_share")  # (epoch, layer, site, freq)
    chosen, how = share_frequencies(root, run_id)
    at = np.isin(data.coord(root, run_id, "freq"), chosen)
    sites = _labels(root, run_id, "site")
    curves = [hv.Curve((epochs, share[:, layer, s][:, at].sum(axis=1)), "epoch", "variance share",
                       label=f"layer {layer} after {SITE_NAMES.get(site, site)}")
              .opts(color=COLORS[layer % len(COLORS)], line_dash=SITE_DASH.get(site, "solid"))
              for layer in range(share.shape[1] if len(epochs) else 0) for s, site in enumerate(sites)]
    ks = ", ".join(map(str, chosen)) or "none"
    return _overlay(curves, f"Residual stream at '=': share in k = {ks} ({how})", "variance share", ylim=(0, 1.02))


def logit_attribution(root: str, run_id: str) -> hv.Overlay:
    """The mean centred correct logit written directly by the embedding, each layer's attention
    and each layer's MLP, and their sum (the model's centred correct logit), in logits."""
    epochs, parts = data.measure(root, run_id, "logit_attribution")  # (epoch, layer, site)
    sites = _labels(root, run_id, "site")
    curves = [hv.Curve(data.measure(root, run_id, "logit_attribution_embed"), "epoch", "logits", label="embedding")
              .opts(color="#7f7f7f")]
    curves += [hv.Curve((epochs, parts[:, layer, s]), "epoch", "logits",
                        label=f"{SITE_NAMES.get(site, site)} {layer}")
               .opts(color=COLORS[layer % len(COLORS)], line_dash=SITE_DASH.get(site, "solid"))
               for layer in range(parts.shape[1] if len(epochs) else 0) for s, site in enumerate(sites)]
    curves.append(hv.Curve(data.measure(root, run_id, "correct_logit"), "epoch", "logits", label="sum (correct logit)")
                  .opts(color="black", line_dash="dotted"))
    return _overlay(curves, "Direct logit attribution: the correct answer's centred logit", "logits")


def logit_lens(root: str, run_id: str, what: str = "accuracy") -> hv.Overlay:
    """Test ``what`` (``accuracy`` or ``loss``, log) of the stream after each layer unembedded as
    if that layer were the last; at the last layer it is the model's own."""
    epochs, values = data.measure(root, run_id, f"logit_lens_{what}")  # (epoch, layer, split)
    test = _labels(root, run_id, "split").index("test")
    loss = what == "loss"
    curves = [hv.Curve((epochs, np.maximum(values[:, layer, test], 1e-12) if loss else values[:, layer, test]),
                       "epoch", f"test {what}", label=f"after layer {layer}").opts(color=COLORS[layer % len(COLORS)])
              for layer in range(values.shape[1] if len(epochs) else 0)]
    return _overlay(curves, f"Logit lens: test {what} after each layer" + (" (log)" if loss else ""), f"test {what}",
                    logy=loss, ylim=None if loss else (0, 1.02))


def logit_lens_loss(root: str, run_id: str) -> hv.Overlay:
    return logit_lens(root, run_id, "loss")
