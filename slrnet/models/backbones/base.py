"""The interface every backbone implements (see ``slrnet.models.backbones``): freezing policy, LR
parameter groups, pretrained loading."""
from __future__ import annotations

import os
from typing import Iterable

import torch.nn as nn

from slrnet.checkpoint import LoadReport, load_checkpoint, load_state_dict_strict


class Backbone(nn.Module):
    """Base class: freezing policy, LR parameter groups and pretrained loading (see module doc)."""

    shallow_channels: int
    deep_channels: int
    output_stride: int = 8
    freeze_bn: bool = False
    # State_dict keys of an ImageNet file that are not part of the backbone (its classifier).
    pretrained_ignore: tuple[str, ...] = ("fc.*",)
    # Model keys an ImageNet file may lack: PyTorch < 0.4.1 did not save BN batch counters.
    pretrained_optional: tuple[str, ...] = ("*.num_batches_tracked",)

    def frozen_modules(self) -> list[nn.Module]:
        """Modules whose parameters never train (stem and first stage of pretrained backbones)."""
        return []

    def frozen_parameters(self) -> list[nn.Parameter]:
        """Every frozen parameter, each once: frozen modules entirely, plus BN affine if ``freeze_bn``."""
        frozen: dict[int, nn.Parameter] = {}
        for module in self.frozen_modules():
            for p in module.parameters():
                frozen[id(p)] = p
        if self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    for p in module.parameters(recurse=False):
                        frozen[id(p)] = p
        return list(frozen.values())

    def freeze(self) -> "Backbone":
        """Stop gradients to :meth:`frozen_parameters` and put frozen BatchNorms in eval mode."""
        for p in self.frozen_parameters():
            p.requires_grad_(False)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if mode and self.freeze_bn:
            # Batch statistics of small, augmented batches would drift away from the ImageNet ones.
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split into weights and biases (biases get their own LR, no decay)."""
        groups: dict[str, list[nn.Parameter]] = {"weights": [], "biases": []}
        for name, p in self.named_parameters():      # named_parameters yields aliased tensors once
            if p.requires_grad:
                groups["biases" if name.endswith("bias") else "weights"].append(p)
        return groups

    def load_pretrained(self, path: str | os.PathLike, strict: bool = True,
                        ignore: Iterable[str] | None = None) -> LoadReport:
        """Load ImageNet weights from ``path`` (a plain state_dict, or one under 'state_dict' / 'model')."""
        state = load_checkpoint(path, map_location="cpu", weights_only=True)
        return load_state_dict_strict(self, state, strict=strict,
                                      ignore=self.pretrained_ignore if ignore is None else tuple(ignore),
                                      ignore_missing=self.pretrained_optional, source=str(path))

    load_imagenet = load_pretrained
