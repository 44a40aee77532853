"""WideResNet-38 ("ResNet38d"), the backbone of PSA, 1-stage-wseg and SLRNet, output stride 8.

    >>> from slrnet.models.backbones import build_backbone
    >>> net = build_backbone("resnet38")                       # 105,070,912 parameters
    >>> net.load_pretrained("ilsvrc-cls_rna-a1_cls1000_ep-0001.pth")   # MXNet-converted ImageNet weights
    >>> f = net(torch.randn(1, 3, 321, 321))
    >>> f["shallow"].shape, f["deep"].shape                    # "conv3" and "conv6"
    (torch.Size([1, 256, 81, 81]), torch.Size([1, 4096, 41, 41]))

Architecture (Wu, Shen & van den Hengel, "Wider or Deeper: Revisiting the ResNet Model for Visual
Recognition", Pattern Recognition 2019, model A1 with dilated last stages as used for
segmentation). Blocks are *pre-activation*: BN -> ReLU -> conv; the shortcut of a block that changes
shape is a 1x1 conv applied to the pre-activated input.

    stage  blocks            channels (in -> mid -> out)   stride  dilation  out stride
    conv1a 3x3 conv          3 -> 64                        1                 1
    b2     3 basic           64 -> 128 -> 128               2                 2
    b3     3 basic           128 -> 256 -> 256              2                 4   -> "conv3"
    b4     6 basic           256 -> 512 -> 512              2                 8
    b5     3 basic           512 -> 512 -> 1024             1       2         8
    b6     1 bottleneck      1024 -> 512/1024 -> 2048       1       4, drop 0.3
    b7     1 bottleneck      2048 -> 1024/2048 -> 4096      1       4, drop 0.5
    bn7    BN + ReLU                                                          8   -> "conv6"

"conv3" is the **raw output of block b3_2** (its residual sum: 256 ch, stride 4, no BatchNorm and
no ReLU applied) and "conv6" is ReLU(bn7(b7 output)) (4096 ch, stride 8): the two maps the
authors' ``ResNet38.forward_as_dict`` hands to SLRNet's decoder (``conv3`` feeds ``fc8_skip`` and
GCI). Taking b4's pre-activation ReLU(BN(b3_2 out)) instead looks natural for a pre-activation
network, but a released checkpoint then computes a different model (tests/test_net_forward.py).

Module names follow the MXNet-converted weights (``conv1a``, ``b2``, ``b2_1``, ...,
``bn_branch2a``, ``conv_branch2b1``, ...), so the ImageNet file and the released SLRNet
checkpoints load by name. ``fixed_layers`` re-registers ``conv1a, b2, b2_1, b2_2`` (the stem and
first stage, frozen entirely) so the 38 aliased keys of the official state_dict exist too
(``tests/fixtures/resnet38d_keys.json``: 266 keys).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.models.backbones.base import Backbone


class ResBlock(nn.Module):
    """Pre-activation basic block: two 3x3 convs; 1x1 conv shortcut when the shape changes."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1,
                 first_dilation: int | None = None, dilation: int = 1):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(in_channels, mid_channels, 3, stride, padding=first_dilation,
                                       dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_channels)
        self.conv_branch2b1 = nn.Conv2d(mid_channels, out_channels, 3, padding=dilation, dilation=dilation,
                                        bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn_branch2a(x))                      # (B, C_in, H, W) pre-activation
        shortcut = x if self.same_shape else self.conv_branch1(pre)
        y = self.conv_branch2a(pre)
        y = self.conv_branch2b1(F.relu(self.bn_branch2b1(y)))
        return shortcut + y                                    # (B, C_out, H/stride, W/stride)


class ResBottleneck(nn.Module):
    """Pre-activation bottleneck: 1x1 (C/4) -> dilated 3x3 (C/2) -> 1x1 (C), channel dropout inside."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.same_shape = in_channels == out_channels and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(in_channels, out_channels // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(out_channels // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(out_channels // 4, out_channels // 2, 3, padding=dilation,
                                        dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(out_channels // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(out_channels // 2, out_channels, 1, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(pre)
        y = self.conv_branch2a(pre)                                              # (B, C/4, H, W)
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(y))))  # (B, C/2, H, W)
        y = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))  # (B, C, H, W)
        return shortcut + y


class ResNet38(Backbone):
    """WideResNet-38 at output stride 8: shallow = "conv3" (256 ch), deep = "conv6" (4096 ch)."""

    shallow_channels = 256
    deep_channels = 4096
    output_stride = 8
    # The MXNet conversion stored the 1000-way classifier under one of these names.
    pretrained_ignore = ("fc.*", "fc1000.*", "linear1000.*", "fc8.*")

    def __init__(self, frozen: bool = True):
        super().__init__()
        self.freeze_bn = bool(frozen)
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)

        self.b2 = ResBlock(64, 128, 128, stride=2)
        self.b2_1 = ResBlock(128, 128, 128)
        self.b2_2 = ResBlock(128, 128, 128)

        self.b3 = ResBlock(128, 256, 256, stride=2)
        self.b3_1 = ResBlock(256, 256, 256)
        self.b3_2 = ResBlock(256, 256, 256)

        self.b4 = ResBlock(256, 512, 512, stride=2)
        self.b4_1 = ResBlock(512, 512, 512)
        self.b4_2 = ResBlock(512, 512, 512)
        self.b4_3 = ResBlock(512, 512, 512)
        self.b4_4 = ResBlock(512, 512, 512)
        self.b4_5 = ResBlock(512, 512, 512)

        # From here on the resolution stays at stride 8; dilation keeps the receptive field growing.
        self.b5 = ResBlock(512, 512, 1024, stride=1, first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(1024, 512, 1024, dilation=2)
        self.b5_2 = ResBlock(1024, 512, 1024, dilation=2)

        self.b6 = ResBottleneck(1024, 2048, stride=1, dilation=4, dropout=0.3)
        self.b7 = ResBottleneck(2048, 4096, dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(4096)

        # Registered last, as in the official model, so the aliased keys come after bn7.
        self.fixed_layers = nn.ModuleList([self.conv1a, self.b2, self.b2_1, self.b2_2])
        if frozen:
            self.freeze()

    def frozen_modules(self) -> list[nn.Module]:
        # frozen=False (e.g. fine-tuning everything) turns off both the BN and the stem freezing.
        return list(self.fixed_layers) if self.freeze_bn else []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.conv1a(x)                                   # (B, 64, H, W)
        x = self.b2_2(self.b2_1(self.b2(x)))                 # (B, 128, H/2, W/2)
        conv3 = self.b3_2(self.b3_1(self.b3(x)))             # (B, 256, H/4, W/4) raw residual sum
        x = self.b4(conv3)                                   # (B, 512, H/8, W/8)
        x = self.b4_5(self.b4_4(self.b4_3(self.b4_2(self.b4_1(x)))))   # (B, 512, H/8, W/8)
        x = self.b5_2(self.b5_1(self.b5(x)))                 # (B, 1024, H/8, W/8)
        x = self.b7(self.b6(x))                              # (B, 4096, H/8, W/8)
        conv6 = F.relu(self.bn7(x))
        return {"shallow": conv3, "deep": conv6}
