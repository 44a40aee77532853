"""What the SLRNet network and the second stage's DeepLabV3+ share: their BatchNorm settings, the one resize of the
method, and the four parameter groups of the SGD recipe."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS, BN_MOMENTUM = 1e-5, 0.05
_BatchNorm = partial(nn.BatchNorm2d, eps=BN_EPS, momentum=BN_MOMENTUM)


def parameter_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """[backbone weights, backbone biases, new weights, new biases] of a model with a ``backbone`` (trainable
    tensors, each once), the four groups of the SGD recipe's learning-rate multipliers (METHOD.md section 3)."""
    groups: list[list[nn.Parameter]] = [[], [], [], []]
    for name, p in model.named_parameters():       # named_parameters yields aliased tensors once
        if p.requires_grad:
            groups[(0 if name.startswith("backbone.") else 2) + int(name.endswith(".bias"))].append(p)
    return groups


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize with align_corners=True, as every resize in the method."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
