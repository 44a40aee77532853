"""Element-wise dropout drawn from a uniform tensor: the same distribution as ``nn.Dropout``, faster on CPU.

``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``, which on CPU costs about 10 ns per element
(about 3 ms for a (16, 32, 24, 24) decoder map on one thread); a uniform draw compared with p gives the same
Bernoulli(1 - p) keep mask 1.5x (p = 0.1) to 3.8x (p = 0.5) faster. SLRNet draws nine such masks per training
step (dropout in ASPP, the segmentation head of both views and the auxiliary head, and the Stochastic Gate of both
views), about 5 % of a teaching-profile step on one CPU thread (``benchmarks/dropout.py``).

The masks differ draw by draw from ``bernoulli_``'s for the same RNG state, not in distribution
(``tests/test_mods.py`` checks the keep rate and the scaling). The mask is drawn in float32 whatever the input
dtype, so that under autocast a bfloat16 uniform (8 bits of mantissa) does not bias a small rate.

    >>> drop = Dropout(0.5)              # a drop-in nn.Dropout: same repr, no parameters, identity in eval mode
    >>> kappa = keep_mask(x, rate=0.3)   # {0, 1} in x's dtype, 0 with probability 0.3
"""
from __future__ import annotations

import torch
import torch.nn as nn


def keep_mask(like: torch.Tensor, rate: float) -> torch.Tensor:
    """A {0, 1} tensor shaped like ``like`` (its dtype and device); each element is 0 with probability ``rate``."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"keep_mask: rate must be in [0, 1), got {rate}")
    return (torch.rand(like.shape, dtype=torch.float32, device=like.device) >= rate).to(like.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (element-wise, inverted: kept elements scaled by 1 / (1 - p)) with the faster mask draw."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        if self.inplace:
            return x.mul_(keep_mask(x, self.p)).div_(1.0 - self.p)
        return x * keep_mask(x, self.p) / (1.0 - self.p)
