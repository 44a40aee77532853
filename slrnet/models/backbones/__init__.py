"""Backbones: one interface for WideResNet-38, ResNet-101 and a tiny CPU network.

    >>> from slrnet.models.backbones import build_backbone
    >>> net = build_backbone("tiny", width=32)
    >>> feats = net(torch.randn(2, 3, 96, 96))
    >>> feats["shallow"].shape, feats["deep"].shape       # stride 4 and stride 8
    (torch.Size([2, 64, 24, 24]), torch.Size([2, 256, 12, 12]))

Every backbone is a :class:`Backbone`:

* ``forward(x (B, 3, H, W)) -> {"shallow": (B, shallow_channels, H/4, W/4),
  "deep": (B, deep_channels, H/OS, W/OS)}`` with output stride OS = 8 (ResNet-101 also 16);
* ``freeze_bn`` (a property of each backbone): when True, every BatchNorm stays in eval mode even
  when the model is put in train mode (running statistics are not updated) and its affine
  parameters do not train; ``frozen_modules()`` (the stem and first stage of the ImageNet
  backbones) do not train at all. METHOD.md section 1 item 1. The tiny backbone (weights from
  ``slrnet.pretrain``) freezes nothing. ``frozen_parameters()`` lists the frozen tensors, ``freeze()``
  applies ``requires_grad=False`` (done at construction when ``frozen=True``);
* ``param_groups() -> {"weights": [...], "biases": [...]}``: trainable backbone tensors, each once,
  for the per-group learning-rate multipliers of METHOD.md section 3;
* ``load_pretrained(path, strict=True)`` (alias ``load_imagenet``): loads an ImageNet state_dict,
  skipping classifier keys (``pretrained_ignore``), and returns a
  :class:`slrnet.checkpoint.LoadReport`; keys or shapes that do not fit are named in the error.
"""
from __future__ import annotations

from slrnet.models.backbones.base import Backbone
from slrnet.models.backbones.resnet38d import ResNet38
from slrnet.models.backbones.resnet101 import ResNet, resnet101
from slrnet.models.backbones.tiny import TinyBackbone

_FACTORIES = {
    "resnet38": ResNet38,
    "wideresnet38": ResNet38,
    "resnet101": resnet101,
    "tiny": TinyBackbone,
}


def build_backbone(name: str, **kwargs) -> Backbone:
    """``"resnet38"`` (alias ``"wideresnet38"``), ``"resnet101"`` or ``"tiny"``; kwargs go to the class."""
    key = str(name).lower()
    if key not in _FACTORIES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(_FACTORIES)}")
    return _FACTORIES[key](**kwargs)


__all__ = ["Backbone", "ResNet38", "ResNet", "resnet101", "TinyBackbone", "build_backbone"]
