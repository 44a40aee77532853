"""Atrous Spatial Pyramid Pooling (ASPP), DeepLabV3+ style, as SLRNet's decoder uses it.

Four parallel branches on the deep backbone map (a 1x1 conv and three dilated 3x3 convs) plus an
image-level branch (global average pool -> 1x1 conv -> BN -> ReLU, broadcast back), concatenated
(5 * out_channels) and fused by a 1x1 conv, BN, ReLU and Dropout(0.5) (METHOD.md section 1.2).

    >>> aspp = ASPP(in_channels=4096, out_channels=256, dilations=(1, 12, 24, 36))
    >>> aspp(torch.randn(2, 4096, 41, 41)).shape
    torch.Size([2, 256, 41, 41])

State-dict keys follow the authors' code (``aspp1..4.{atrous_conv,bn}``, ``global_avg_pool.{1,2}``,
``conv1``, ``bn1``) so released checkpoints load strictly (``tests/fixtures/resnet38d_keys.json``).
``norm_layer`` is a BatchNorm factory ``norm_layer(num_features)``; the model passes its own (eps,
momentum) and freezes the statistics by keeping these BN layers in eval mode. When they do train,
a batch of one cannot give the image-level branch batch statistics (one value per channel); that
branch then uses its running statistics for the batch instead of raising like the original.

References: Chen et al., "Encoder-Decoder with Atrous Separable Convolution" (DeepLabV3+), ECCV 2018;
Pan et al., SLRNet, IJCV 2022.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.models.mods.dropout import Dropout

NormLayer = Callable[..., nn.Module]


class ASPPBranch(nn.Module):
    """conv (no bias) -> BN -> ReLU; keys ``atrous_conv``, ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        padding = 0 if kernel_size == 1 else dilation    # keeps the spatial size
        self.atrous_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                                     dilation=dilation, bias=False)
        self.bn = norm_layer(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.atrous_conv(x)))


class ASPP(nn.Module):
    """ASPP head: (B, in_channels, h, w) -> (B, out_channels, h, w)."""

    def __init__(self, in_channels: int, out_channels: int = 256, dilations: Sequence[int] = (1, 12, 24, 36),
                 norm_layer: NormLayer = nn.BatchNorm2d, dropout: float = 0.5):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if len(dilations) != 4 or min(dilations) < 1:
            raise ValueError(f"ASPP: dilations must be 4 positive integers, got {dilations!r}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"ASPP: in_channels and out_channels must be positive, got {in_channels}, {out_channels}")
        self.in_channels, self.out_channels, self.dilations = in_channels, out_channels, dilations
        # the first branch is a 1x1 conv (its "dilation" is irrelevant), the others dilated 3x3
        self.aspp1 = ASPPBranch(in_channels, out_channels, 1, dilations[0], norm_layer)
        self.aspp2 = ASPPBranch(in_channels, out_channels, 3, dilations[1], norm_layer)
        self.aspp3 = ASPPBranch(in_channels, out_channels, 3, dilations[2], norm_layer)
        self.aspp4 = ASPPBranch(in_channels, out_channels, 3, dilations[3], norm_layer)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(),
        )
        self.conv1 = nn.Conv2d(5 * out_channels, out_channels, 1, bias=False)
        self.bn1 = norm_layer(out_channels)
        self.dropout = Dropout(dropout)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _image_pool(self, x: torch.Tensor) -> torch.Tensor:
        pool, conv, bn, relu = self.global_avg_pool
        y = conv(pool(x))                                                    # (B, C, 1, 1)
        if bn.training and y.shape[0] == 1 and getattr(bn, "running_mean", None) is not None:
            # a training batch of one has a single value per channel here, from which BatchNorm
            # cannot take statistics (the original raises); use the running ones for this batch
            y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        else:
            y = bn(y)
        return relu(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ASPP.forward: expected x of shape (B, {self.in_channels}, h, w), "
                             f"got {tuple(x.shape)}")
        size = x.shape[-2:]
        pooled = self._image_pool(x)                                         # (B, C, 1, 1)
        # bilinear upsampling of a 1x1 map is a broadcast; kept as interpolate like the original
        pooled = F.interpolate(pooled, size=size, mode="bilinear", align_corners=True)
        x = torch.cat([self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled], dim=1)  # (B, 5C, h, w)
        x = F.relu(self.bn1(self.conv1(x)))                                  # (B, C, h, w)
        return self.dropout(x)
