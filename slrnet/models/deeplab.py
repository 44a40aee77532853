"""DeepLabV3+, the fully supervised second stage of the two-stage recipe (METHOD.md section 6).

SLRNet's pseudo labels of the training set (``python -m slrnet export``) train a standard segmenter; the paper's
best weakly supervised number (69.3 on VOC val) is a ResNet-101 DeepLabV3+ trained that way. The network
(Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018):

    deep = backbone(x)["deep"]                   (B, C_deep, H/OS, W/OS)     OS = output stride, 8 or 16
    a = ASPP(deep)                               (B, C, H/OS, W/OS)          dilations 1, 12, 24, 36 at OS 8
    s = ReLU(BN(conv1x1(backbone(x)["shallow"])))  (B, 48, H/4, W/4)         the low-level features
    y = decoder([up(a), s])                      (B, C, H/4, W/4)            two 3x3 conv + BN + ReLU
    logits = up(conv1x1(y))                      (B, K, H, W)                K classes, background included

trained with plain pixel cross-entropy, 255 ignored. The same trainer, configs, checkpoints, DDP, AMP and
test-time code (``slrnet.infer.Predictor``) as SLRNet: ``model.name: deeplabv3plus``.

    >>> from slrnet.models import build_model
    >>> net = build_model({"name": "deeplabv3plus", "backbone": "tiny", "num_classes": 7, "decoder_channels": 32,
    ...                    "backbone_kwargs": {"width": 16}, "aspp_dilations": [1, 2, 4, 6]})
    >>> net.predict(torch.randn(1, 3, 96, 96))["masks"].shape
    torch.Size([1, 7, 96, 96])
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.models.backbones import build_backbone
from slrnet.models.mods import ASPP
from slrnet.models.common import _BatchNorm, parameter_groups
from slrnet.ops import resize
from slrnet.variants import VARIANTS

IGNORE_INDEX = 255


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ on any backbone of ``slrnet.models.backbones``; the interface the trainer and ``Predictor`` use."""

    spec = VARIANTS["deeplabv3plus"]  # what the trainer reads: it takes every batch's pixel labels
    variant = "supervised"
    predicts_background = True        # K output channels, no class scores, no class filtering
    takes_pixel_labels = True         # fully supervised: every batch's pixel labels
    makes_pseudo_labels = False       # no pseudo-label snapshots to draw
    sync_batchnorm = True             # its BatchNorms train: synchronised across GPUs under torchrun

    def __init__(self, backbone: str = "resnet101", num_classes: int = 21, pretrained: str = "",
                 aspp_dilations=(1, 12, 24, 36), decoder_channels: int = 256, skip_channels: int = 48,
                 backbone_kwargs: dict | None = None):
        super().__init__()
        self.num_classes = int(num_classes)
        self.backbone = build_backbone(backbone, **(backbone_kwargs or {}))
        if pretrained:
            self.backbone.load_pretrained(pretrained)
        C = int(decoder_channels)
        self.aspp = ASPP(self.backbone.deep_channels, C, dilations=tuple(aspp_dilations), norm_layer=_BatchNorm)
        self.skip = nn.Sequential(nn.Conv2d(self.backbone.shallow_channels, skip_channels, 1, bias=False),
                                  _BatchNorm(skip_channels), nn.ReLU())
        self.decoder = nn.Sequential(nn.Conv2d(C + skip_channels, C, 3, padding=1, bias=False), _BatchNorm(C),
                                     nn.ReLU(),
                                     nn.Conv2d(C, C, 3, padding=1, bias=False), _BatchNorm(C), nn.ReLU())
        self.classifier = nn.Conv2d(C, self.num_classes, 1)
        for m in (*self.aspp.modules(), *self.skip.modules(), *self.decoder.modules(), self.classifier):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """[backbone weights, backbone biases, new weights, new biases] (trainable, each once)."""
        return parameter_groups(self)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> class logits (B, K, H, W)."""
        feats = self.backbone(images)
        skip = self.skip(feats["shallow"])                                      # (B, 48, H/4, W/4)
        x = resize(self.aspp(feats["deep"]), skip.shape[-2:])                      # (B, C, H/4, W/4)
        x = self.decoder(torch.cat([x, skip], dim=1))                           # (B, C, H/4, W/4)
        return resize(self.classifier(x), images.shape[-2:])                       # (B, K, H, W)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                pixel_labels: torch.Tensor | None = None, has_mask: torch.Tensor | None = None,
                seg_loss: bool = True) -> dict:
        """Training forward: ``losses["seg_labelled"]`` is the pixel cross-entropy (255 ignored) over the images
        with pixel labels (``has_mask``; all of them when None); the SLRNet terms the trainer also weighs are 0
        (``seg_loss``, SLRNet's switch for its pseudo-label loss, changes nothing here)."""
        logits = self.logits(images)
        zero = logits.new_zeros(())
        losses = {"cls": zero, "mask": zero, "code": zero, "seg": zero}
        if pixel_labels is not None:
            target = pixel_labels.long()
            if has_mask is not None:
                target = torch.where(has_mask[:, None, None].bool(), target, torch.full_like(target, IGNORE_INDEX))
            per_pixel = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
            losses["seg_labelled"] = per_pixel / (target != IGNORE_INDEX).sum().clamp_min(1)
        return {"losses": losses, "maps": {"masks": logits.detach().softmax(dim=1)}, "scores": None}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict:
        """One view at test time: ``{"scores": None, "masks": softmax (B, K, H, W)}``."""
        return {"scores": None, "masks": self.logits(images).softmax(dim=1)}
