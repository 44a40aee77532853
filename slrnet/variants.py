"""The model variants a config's ``model.name`` selects, specified once.

Everything a variant does differently is a field of its :class:`Variant`, and the network (``SLRNet``), the
trainer, the config check, the semi-supervised split and the learning check read those fields; nothing else
tests a variant's name. The authors ship a model file per variant (``models/slrnet*.py``); here one ``SLRNet``
class builds them all, and ``DeepLabV3Plus`` the fully supervised second stage.

    >>> from slrnet.variants import variant
    >>> variant("slrnet_coco_pseudo").takes_pixel_labels       # the training step never hands it masks
    False
    >>> variant("slrnet_semi_wo_cls").unlabelled                # what the images without pixel labels keep
    'hidden'
"""
from __future__ import annotations

from dataclasses import dataclass

CLASSIFICATION_LOSSES = ("soft_margin", "weighted_bce", "none")
PSEUDO_LABEL_RULES = ("fixed", "peak_normalised", "own_background")


@dataclass(frozen=True)
class Variant:
    name: str                    # model.name, the authors' model file
    network: str                 # SLRNet(variant=...): wss | semi | semi_wo_cls | coco | lid (| deeplabv3plus)
    use_cvlr: bool = True        # False: the predecessor single-stage network, one view, no CVLR
    # --- the training step
    takes_pixel_labels: bool = False   # the trainer hands it each batch's pixel labels (semi, second stage only)
    uses_image_labels: bool = True     # False: image labels are never read (semi without image labels)
    unlabelled: str | None = None   # semi-supervised: the unlabelled images keep "image_labels" / nothing ("hidden")
    # --- the losses and the pseudo labels
    classification: str = "soft_margin"   # multi-label soft margin | COCO's positive-weighted BCE | none
    aux_cls_weight: float = 0.4           # the auxiliary head's share of the classification loss
    pseudo_labels: str = "fixed"          # fixed 0.6 / 0.2 cut-offs | peak-normalised maps with the config's
                                          # cut-offs | the head's own background channel (bg 0.9, bg_pow)
    # --- the network
    predicts_background: bool = False     # the head outputs K channels (its own background), not K-1 + constant
    wide: bool = False                    # L2ID: decoder, GCI and CVLR at decoder_channels, fc8_up, 96-wide skip
    architecture: str = "SLRNet"          # the class build_model makes: SLRNet | DeepLabV3Plus
    model_keys: tuple[str, ...] | None = None   # the model-section keys it reads (None: all of them)

    def __post_init__(self):
        if self.classification not in CLASSIFICATION_LOSSES:
            raise ValueError(f"Variant {self.name}: classification must be one of {CLASSIFICATION_LOSSES}")
        if self.pseudo_labels not in PSEUDO_LABEL_RULES:
            raise ValueError(f"Variant {self.name}: pseudo_labels must be one of {PSEUDO_LABEL_RULES}")

    @property
    def semi_supervised(self) -> bool:
        return self.unlabelled is not None

    @property
    def reads_cutoffs(self) -> bool:
        """model.cutoff_top / cutoff_low set its pseudo-label thresholds (else fixed 0.6 / 0.2)."""
        return self.pseudo_labels != "fixed"

    @property
    def weighs_classes(self) -> bool:
        """model.pos_weight / model.class_weights weigh its classification loss."""
        return self.classification == "weighted_bce"

    @property
    def learns_from_pseudo_labels_only(self) -> bool:
        """Weakly supervised: no pixel label ever reaches it, its pseudo labels are all its segmentation loss has."""
        return not self.takes_pixel_labels

    @property
    def sums_soft_margin_terms(self) -> bool:
        """Its ``losses["cls"]`` is the plain sum of soft-margin terms (views + weighted auxiliary head), so it can
        be compared with the label prior's loss (slrnet.learning_check)."""
        return self.classification == "soft_margin" and not self.takes_pixel_labels


VARIANTS = {v.name: v for v in (
    Variant("slrnet", "wss"),
    Variant("single_stage", "wss", use_cvlr=False),
    Variant("slrnet_semi", "semi", takes_pixel_labels=True, unlabelled="image_labels"),
    Variant("slrnet_semi_wo_cls", "semi_wo_cls", takes_pixel_labels=True, uses_image_labels=False,
            unlabelled="hidden", classification="none", pseudo_labels="own_background", predicts_background=True),
    Variant("slrnet_coco_pseudo", "coco", classification="weighted_bce", pseudo_labels="peak_normalised"),
    Variant("slrnet_lid_wide", "lid", classification="weighted_bce", pseudo_labels="peak_normalised",
            aux_cls_weight=1.0, wide=True),
    # the fully supervised second stage of the two-stage recipe, trained on exported pseudo labels
    Variant("deeplabv3plus", "deeplabv3plus", use_cvlr=False, takes_pixel_labels=True, classification="none",
            predicts_background=True, architecture="DeepLabV3Plus",
            model_keys=("name", "backbone", "pretrained", "num_classes", "decoder_channels", "aspp_dilations",
                        "backbone_kwargs")),
)}


def variant(name: str) -> Variant:
    """The variant ``model.name`` names; an unknown name is an error listing the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"model.name: unknown model {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def network_variant(network: str | Variant, use_cvlr: bool = True) -> Variant:
    """The variant of ``SLRNet(variant=network, use_cvlr=...)``: a network name (``"wss"``, ``"coco"``, ...), a
    ``model.name`` or a :class:`Variant`. A network without the single-view form refuses ``use_cvlr=False``."""
    if isinstance(network, Variant):
        return network
    if network in VARIANTS:
        return VARIANTS[network]
    networks = sorted({v.network for v in VARIANTS.values()})
    if network not in networks:
        raise ValueError(f"variant must be one of {networks} (or a model.name), got {network!r}")
    for spec in VARIANTS.values():
        if spec.network == network and spec.use_cvlr == use_cvlr:
            return spec
    raise ValueError(f"model.use_cvlr: the variant {network!r} needs the CVLR network (use_cvlr=true)")
