"""A tiny residual backbone for the CPU teaching profile (its "ImageNet" weights are made locally).

    >>> from slrnet.models.backbones import build_backbone
    >>> net = build_backbone("tiny", width=32)
    >>> f = net(torch.randn(16, 3, 96, 96))
    >>> f["shallow"].shape, f["deep"].shape
    (torch.Size([16, 64, 24, 24]), torch.Size([16, 256, 12, 12]))

Same interface as the ImageNet backbones (shallow map at stride 4 with ``2*width`` channels,
deep map at stride 8 with ``8*width`` channels), small enough that a forward and backward pass of
a batch of 16 at 96x96 plus its 48x48 second view takes a few tens of milliseconds on 2 CPU cores.

    stage    op                                           channels        stride  dilation
    stem     3x3 conv s2                                  3 -> w/2        2
    stage1   3x3 conv s2, residual block                  w/2 -> w        4
             1x1 projection                   -> shallow  w -> 2w         4
    stage2   3x3 conv s2, residual block                  2w -> 2w        8
    stage3   2 residual blocks, dilated                   2w -> 2w        8       2
             1x1 projection                   -> deep     2w -> 8w        8

Every conv is followed by BatchNorm and ReLU; a residual block is two 3x3 convs with an
identity shortcut. The dilated last stage keeps the deep map at stride 8 while the theoretical
receptive field reaches 191 px, so a deep feature "sees" whole objects of 20-60 px in a
128 px image (plus the surroundings that tell foreground from background). Channels stay at 2w
inside the network and are only expanded by the final 1x1 projection: the 3x3 convs are where
the time goes. BatchNorms train normally (``freeze_bn = False``) and nothing is frozen: the
weights the teaching configs start from (``model.pretrained``) come from a short classification
pretraining on images disjoint from the dataset (``slrnet.pretrain``), not from ImageNet.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from slrnet.models.backbones.base import Backbone


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, padding=padding,
                                   dilation=dilation, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU; both 3x3 convs share the dilation."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(self.conv1(x))))


DEFAULT_WIDTH = 32   # also the width slrnet.pretrain assumes for a config without backbone_kwargs.width


class TinyBackbone(Backbone):
    """Residual CNN: shallow (2w ch, stride 4), deep (8w ch, stride 8, dilated last stage)."""

    output_stride = 8
    freeze_bn = False

    def __init__(self, width: int = DEFAULT_WIDTH):
        super().__init__()
        if int(width) < 2 or int(width) % 2:
            raise ValueError(f"TinyBackbone width must be an even integer >= 2, got {width!r}")
        w = int(width)
        self.width = w
        self.shallow_channels = 2 * w
        self.deep_channels = 8 * w
        self.stem = conv_bn_relu(3, w // 2, stride=2)                               # stride 2
        self.stage1 = nn.Sequential(conv_bn_relu(w // 2, w, stride=2), ResidualBlock(w))   # stride 4
        self.shallow_proj = conv_bn_relu(w, 2 * w, kernel=1)
        self.stage2 = nn.Sequential(conv_bn_relu(2 * w, 2 * w, stride=2), ResidualBlock(2 * w))  # stride 8
        self.stage3 = nn.Sequential(ResidualBlock(2 * w, dilation=2), ResidualBlock(2 * w, dilation=2))
        self.deep_proj = conv_bn_relu(2 * w, 8 * w, kernel=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stage1(self.stem(x))                # (B, w, H/4, W/4)
        shallow = self.shallow_proj(x)               # (B, 2w, H/4, W/4)
        x = self.stage3(self.stage2(shallow))        # (B, 2w, H/8, W/8)
        deep = self.deep_proj(x)                     # (B, 8w, H/8, W/8)
        return {"shallow": shallow, "deep": deep}
