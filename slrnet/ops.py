"""Tensor operations the method uses in several places, written once so every caller (the network, the losses,
inference, the analyses and the golden tests) runs the same code.

    >>> from slrnet.ops import resize, split_views, with_background
    >>> resize(torch.rand(2, 7, 24, 24), (96, 96)).shape          # bilinear, align_corners=True
    torch.Size([2, 7, 96, 96])
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (..., h, w) maps with align_corners=True, as every resize in the method; no-op (the same
    tensor) at the same size."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def split_views(flat: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """(B, D, N1 + N2 + ...) stacked pixels of several views, view 1 first -> [(B, D, h1, w1), (B, D, h2, w2), ...].

    The inverse of stacking the views' flattened maps along the pixel axis (the collective factorisation's
    ``X = [X1, X2]``)."""
    shapes = [(int(h), int(w)) for h, w in shapes]
    sizes = [h * w for h, w in shapes]
    if flat.dim() != 3 or flat.shape[-1] != sum(sizes):
        raise ValueError(f"split_views: expected (B, D, {' + '.join(map(str, sizes))}), got {tuple(flat.shape)}")
    B, D = flat.shape[:2]
    return [part.reshape(B, D, h, w) for part, (h, w) in zip(flat.split(sizes, dim=-1), shapes)]


BACKGROUND_RULES = ("constant", "one_minus_max")


def with_background(x_fg: torch.Tensor, rule: str = "constant") -> torch.Tensor:
    """Foreground logits (B, K-1, h, w) -> logits (B, K, h, w) with a background logit in front.

    ``"constant"``: 1 everywhere (the segmentation head); ``"one_minus_max"``: 1 - the largest foreground logit
    (the auxiliary head)."""
    if x_fg.dim() != 4:
        raise ValueError(f"with_background: expected foreground logits (B, K-1, h, w), got {tuple(x_fg.shape)}")
    if rule == "constant":
        bg = torch.ones_like(x_fg[:, :1])                                   # (B, 1, h, w)
    elif rule == "one_minus_max":
        bg = 1 - x_fg.max(dim=1, keepdim=True)[0]                           # (B, 1, h, w)
    else:
        raise ValueError(f"with_background: rule must be one of {BACKGROUND_RULES}, got {rule!r}")
    return torch.cat([bg, x_fg], dim=1)
