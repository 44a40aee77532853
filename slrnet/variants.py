"""The model variants a config's ``model.name`` selects, specified once.

Every place that behaves differently per variant reads this table: the config check (which keys a variant
reads), the model factory (which SLRNet variant to build), the trainer and the semi-supervised split (what the
images without pixel labels keep). The authors ship a model file per variant (``models/slrnet*.py``); here one
``SLRNet`` class builds them all, and ``DeepLabV3Plus`` the fully supervised second stage.

    >>> from slrnet.variants import variant
    >>> variant("slrnet_semi_wo_cls").unlabelled        # what the images without pixel labels keep
    'hidden'
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str                    # model.name, the authors' model file
    network: str                 # SLRNet(variant=...): wss | semi | semi_wo_cls | coco | lid
    use_cvlr: bool = True        # False: the predecessor single-stage network, one view, no CVLR
    unlabelled: str | None = None   # semi-supervised: the unlabelled images keep "image_labels" / nothing ("hidden")
    reads_cutoffs: bool = False  # model.cutoff_top / cutoff_low set its pseudo-label thresholds (else fixed 0.6 / 0.2)
    model_keys: tuple[str, ...] | None = None   # the model-section keys it reads (None: all of them)

    @property
    def semi_supervised(self) -> bool:
        return self.unlabelled is not None


VARIANTS = {v.name: v for v in (
    Variant("slrnet", "wss"),
    Variant("single_stage", "wss", use_cvlr=False),
    Variant("slrnet_semi", "semi", unlabelled="image_labels"),
    Variant("slrnet_semi_wo_cls", "semi_wo_cls", unlabelled="hidden", reads_cutoffs=True),
    Variant("slrnet_coco_pseudo", "coco", reads_cutoffs=True),
    Variant("slrnet_lid_wide", "lid", reads_cutoffs=True),
    # the fully supervised second stage of the two-stage recipe, trained on exported pseudo labels
    Variant("deeplabv3plus", "deeplabv3plus", use_cvlr=False,
            model_keys=("name", "backbone", "pretrained", "num_classes", "decoder_channels", "aspp_dilations",
                        "backbone_kwargs")),
)}


def variant(name: str) -> Variant:
    """The variant ``model.name`` names; an unknown name is an error listing the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"model.name: unknown model {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]
