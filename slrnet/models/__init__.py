"""Models: backbones, building-block modules and the SLRNet network.

    >>> from slrnet.models import build_model
    >>> net = build_model({"backbone": "tiny", "num_classes": 7, "decoder_channels": 64})
"""
from slrnet.models.slrnet import SLRNet, build_model, build_trained_model

__all__ = ["SLRNet", "build_model", "build_trained_model"]
