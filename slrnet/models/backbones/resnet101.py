"""ResNet-101 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016), dilated.

    >>> from slrnet.models.backbones import build_backbone
    >>> net = build_backbone("resnet101", output_stride=16)
    >>> net.load_pretrained("resnet101-63fe2227.pth")       # torchvision ImageNet weights, fc.* skipped
    >>> f = net(torch.randn(1, 3, 320, 320))
    >>> f["shallow"].shape, f["deep"].shape
    (torch.Size([1, 256, 80, 80]), torch.Size([1, 2048, 20, 20]))

Written without torchvision, but with torchvision's module names so the standard ImageNet
``resnet101`` file loads by name: ``conv1, bn1`` (7x7 stem), then ``layer1..layer4``, each an
``nn.Sequential`` of bottlenecks ``N.{conv1, bn1, conv2, bn2, conv3, bn3}`` with a projection
shortcut ``N.downsample.{0 (1x1 conv), 1 (BN)}`` on the first block of a stage; the classifier
``fc`` is not built (its keys are ignored when loading). Bottlenecks put the stride on the 3x3
conv ("ResNet v1.5", torchvision's layout, which the weights were trained with).

Output stride as in DeepLab (Chen et al. 2017): the last stage (OS 16), or the last two (OS 8),
keep stride 1 and dilate their 3x3 convs instead; the first block of a dilated stage uses the
previous stage's dilation, the following ones the new dilation (2 at OS 16; 2 and 4 at OS 8).
shallow = layer1 output (256 ch, stride 4), deep = layer4 output (2048 ch, stride OS). The shallow
map is the tensor a DeepLabV3+ R-101 decoder takes as its low-level feature (Chen et al., ECCV 2018:
"Conv2" of the stride-4 stage, i.e. the output of the last ``layer1`` block, after its ReLU): in a
post-activation ResNet each block's output is already ``ReLU(BN(.) + shortcut)``, so there is no
separate "raw sum" to choose, unlike the pre-activation WideResNet-38 (whose raw ``b3_2`` output
the authors take; see ``resnet38d``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.models.backbones.base import Backbone


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand (x4), post-activation, identity shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))                 # (B, planes, H, W)
        y = F.relu(self.bn2(self.conv2(y)))                 # (B, planes, H/s, W/s)
        y = self.bn3(self.conv3(y))                         # (B, 4 planes, H/s, W/s)
        return F.relu(y + shortcut)


class ResNet(Backbone):
    """Bottleneck ResNet with torchvision key names; ``blocks=(3, 4, 23, 3)`` is ResNet-101."""

    shallow_channels = 256
    deep_channels = 2048

    def __init__(self, blocks=(3, 4, 23, 3), output_stride: int = 8, frozen: bool = True):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"ResNet output_stride must be 8 or 16, got {output_stride!r}")
        if len(blocks) != 4 or any(int(n) < 1 for n in blocks):
            raise ValueError(f"ResNet blocks must be 4 positive block counts, got {blocks!r}")
        self.output_stride = output_stride
        self.freeze_bn = bool(frozen)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        # (planes, stride) per stage; stages past the output stride trade stride for dilation.
        dilate = {8: (False, False, True, True), 16: (False, False, False, True)}[output_stride]
        self._in_channels, self._dilation = 64, 1
        self.layer1 = self._make_stage(64, blocks[0], stride=1, dilate=dilate[0])
        self.layer2 = self._make_stage(128, blocks[1], stride=2, dilate=dilate[1])
        self.layer3 = self._make_stage(256, blocks[2], stride=2, dilate=dilate[2])
        self.layer4 = self._make_stage(512, blocks[3], stride=2, dilate=dilate[3])
        self._init_weights()
        if frozen:
            self.freeze()

    def _make_stage(self, planes: int, num_blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        first_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        layers = [Bottleneck(self._in_channels, planes, stride, first_dilation)]
        self._in_channels = planes * Bottleneck.expansion
        layers += [Bottleneck(self._in_channels, planes, 1, self._dilation) for _ in range(1, int(num_blocks))]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def frozen_modules(self) -> list[nn.Module]:
        # The stem and the first stage keep their ImageNet weights (METHOD.md section 1 item 1).
        return [self.conv1, self.bn1, self.layer1] if self.freeze_bn else []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))   # (B, 64, H/4, W/4)
        shallow = self.layer1(x)                            # (B, 256, H/4, W/4)
        x = self.layer3(self.layer2(shallow))               # (B, 1024, H/8 or H/16, ...)
        deep = self.layer4(x)                               # (B, 2048, H/OS, W/OS)
        return {"shallow": shallow, "deep": deep}


def resnet101(output_stride: int = 8, frozen: bool = True) -> ResNet:
    """ResNet-101 (3, 4, 23, 3 bottlenecks): 42,500,160 parameters (torchvision: 44,549,160 with fc)."""
    return ResNet((3, 4, 23, 3), output_stride=output_stride, frozen=frozen)
