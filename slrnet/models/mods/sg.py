"""Stochastic Gate (SG): randomly mixes deep and shallow features during training.

With rate alpha (0.3) and a per-element keep mask kappa in {0, 1} (kappa = 0 with probability alpha),
the training output is (fixture README section 7)

    out_train = kappa * (x_deep - alpha * x_shallow) / max(1e-8, 1 - alpha) + (1 - kappa) * x_shallow

whose expectation is x_deep; at test time the gate is deterministic:

    out_eval = (1 - alpha) * x_deep + alpha * x_shallow

(the two do not agree in expectation; that is the authors' behaviour and is kept).

    >>> sg = StochasticGate(0.3)
    >>> out = sg(x_deep, x_shallow)                     # training: random mask
    >>> out = sg(x_deep, x_shallow, keep_mask=kappa)    # training with a given {0,1} mask
    >>> sg.eval(); out = sg(x_deep, x_shallow)          # deterministic mix

The random mask has the original's distribution (its inverted dropout on ones, mapped to {0, 1}, is 0 with
probability alpha) but is drawn from a uniform tensor, about 3x faster on CPU (``mods/dropout.py``), so a given
torch RNG state gives another draw than the original's. The module has no parameters.

Reference: Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from slrnet.models.mods.dropout import keep_mask as draw_keep_mask


class StochasticGate(nn.Module):
    """forward(x_deep, x_shallow, keep_mask=None) -> mixed features, same shape."""

    def __init__(self, rate: float = 0.3):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"StochasticGate: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"

    def sample_keep_mask(self, like: torch.Tensor) -> torch.Tensor:
        """A {0, 1} mask shaped like ``like``; each element is 0 with probability ``rate``."""
        return draw_keep_mask(like, self.rate)

    def forward(self, x_deep: torch.Tensor, x_shallow: torch.Tensor,
                keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x_deep.shape != x_shallow.shape:
            raise ValueError(f"StochasticGate.forward: x_deep {tuple(x_deep.shape)} and x_shallow "
                             f"{tuple(x_shallow.shape)} must have the same shape")
        alpha = self.rate
        if not self.training:
            return (1 - alpha) * x_deep + alpha * x_shallow
        if keep_mask is None:
            keep_mask = self.sample_keep_mask(x_deep)
        elif keep_mask.shape != x_deep.shape:
            raise ValueError(f"StochasticGate.forward: keep_mask must have shape {tuple(x_deep.shape)}, "
                             f"got {tuple(keep_mask.shape)}")
        keep_mask = keep_mask.to(x_deep.dtype)
        return keep_mask * (x_deep - alpha * x_shallow) / max(1e-8, 1 - alpha) + (1 - keep_mask) * x_shallow
