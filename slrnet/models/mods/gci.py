"""Global Cue Injection (GCI): adaptive instance modulation of shallow features by deep ones.

The deep map yields per-channel global cues (max over pixels of a 1x1 conv + BN + ReLU) that
scale and shift the normalised shallow features, like AdaIN with statistics taken from the deep
features (METHOD.md section 1.7; fixture README section 7):

    g = ReLU(BN_deep(conv1x1(y_deep)))            (B, 2C, h, w)
    gamma, beta = split(max over pixels of g)      (B, C) each
    z = ReLU(BN_skip(conv1x1(x_shallow)) * (gamma + 1) + beta)     BN_skip has no affine
    out = ReLU(BN_cls(conv1x1(z)))                 (B, C, h, w)

    >>> gci = GCI(channels=256)
    >>> gci(torch.randn(2, 256, 81, 81), torch.randn(2, 256, 81, 81)).shape
    torch.Size([2, 256, 81, 81])

Keys ``fc_deep.{0,1}``, ``fc_skip.{0,1}``, ``fc_cls.{0,1}`` match the authors' code. The BN layers
default to eps 1e-5 and momentum 0.05 (the network's BatchNorm); ``norm_layer(num_features,
affine=...)`` replaces them (e.g. SyncBatchNorm).

Reference: Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020
(where GCI was introduced); Pan et al., SLRNet, IJCV 2022.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

default_norm_layer = partial(nn.BatchNorm2d, eps=1e-5, momentum=0.05)


class GCI(nn.Module):
    """forward(x_shallow (B, C, h, w), y_deep (B, C, h, w)) -> (B, C, h, w)."""

    def __init__(self, channels: int = 256, norm_layer: Callable[..., nn.Module] = default_norm_layer):
        super().__init__()
        if channels < 1:
            raise ValueError(f"GCI: channels must be positive, got {channels}")
        self.channels = channels
        C = channels
        self.fc_deep = nn.Sequential(nn.Conv2d(C, 2 * C, 1, bias=False), norm_layer(2 * C))
        self.fc_skip = nn.Sequential(nn.Conv2d(C, C, 1, bias=False), norm_layer(C, affine=False))
        self.fc_cls = nn.Sequential(nn.Conv2d(C, C, 1, bias=False), norm_layer(C))

    def forward(self, x_shallow: torch.Tensor, y_deep: torch.Tensor) -> torch.Tensor:
        C = self.channels
        for name, t in (("x_shallow", x_shallow), ("y_deep", y_deep)):
            if t.dim() != 4 or t.shape[1] != C:
                raise ValueError(f"GCI.forward: expected {name} of shape (B, {C}, h, w), got {tuple(t.shape)}")
        g = F.relu(self.fc_deep(y_deep))                      # (B, 2C, h, w)
        cues = g.flatten(2).max(dim=2).values                 # (B, 2C): global max per channel
        gamma, beta = cues[:, :C, None, None], cues[:, C:, None, None]   # (B, C, 1, 1) each
        s = self.fc_skip(x_shallow)                           # (B, C, h, w), normalised, no affine
        z = F.relu(s * (gamma + 1) + beta)
        return F.relu(self.fc_cls(z))                         # (B, C, h, w)
