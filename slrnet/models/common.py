"""What the SLRNet network and the second stage's DeepLabV3+ share: their BatchNorm settings and the four parameter groups
of the SGD recipe (the method's one resize is ``slrnet.ops.resize``)."""
from __future__ import annotations

from functools import partial

import torch.nn as nn

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


