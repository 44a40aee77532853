"""SLRNet: the Self-supervised Low-Rank Network for single-stage weakly supervised segmentation.

One network, trained from image-level labels only (METHOD.md sections 1-2):

    image ──► backbone ──► ASPP + decoder ──► X1 (B, C, h, w) ─┐
    view 2 = resize(image, 0.5) ──► same ──► X2 (B, C, h2, w2) ─┤
                     aux head on X1 ──► class logits ──► D0 (dictionary init, no grad)
                     CVLR: collective factorisation of [X1, X2] with the shared dictionary
                     ──► per-view segmentation heads (GCI + SG + convs) ──► masks M1, M2
    losses: classification (nGWP + focal), mask / code cross-view consistency, and the
            self-supervised segmentation loss on PAMR-refined pseudo labels (after pretraining).

``use_cvlr=False`` gives the predecessor single-stage baseline (Araslanov & Roth, CVPR 2020):
one view, no auxiliary head, no factorisation, losses cls + seg only.

    >>> from slrnet.models import build_model
    >>> net = build_model({"backbone": "tiny", "num_classes": 7, "decoder_channels": 64,
    ...                    "aspp_dilations": [1, 2, 4, 6]})
    >>> out = net(torch.randn(2, 3, 96, 96), labels=torch.tensor([[1., 0, 0, 0, 0, 1]] * 2))
    >>> sorted(out["losses"])
    ['cls', 'code', 'mask', 'seg']
    >>> net.eval(); net.predict(torch.randn(1, 3, 96, 96))["masks"].shape
    torch.Size([1, 7, 96, 96])

Module names and the ``newly_added`` alias list match the authors' ``models/slrnet.py`` so the
released checkpoints load with strict key matching (see ``tests/fixtures/resnet38d_keys.json``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from slrnet import losses as L
from slrnet.data.transforms import MEAN, STD    # the images were normalised with these
from slrnet.models.backbones import build_backbone
from slrnet.models.common import _BatchNorm, parameter_groups
from slrnet.diagnostics import factor_diagnostics
from slrnet.models.mods.cvlr import RECONSTRUCTIONS
from slrnet.objective import AUX_SEG_WEIGHT, over_views
from slrnet.ops import resize, split_views, with_background
from slrnet.variants import VARIANTS, Variant, network_variant, variant
from slrnet.models.mods import (ASPP, GCI, PAMR, DictionaryInitialization, Dropout,
                                FactorizationReconstruction, StochasticGate, run_pamr)


class SLRNet(nn.Module):
    """SLRNet (``variant="wss"``), its semi-supervised heads (``"semi"``, ``"semi_wo_cls"``) and the COCO recipe.

    ``variant`` names the network (or is a :class:`slrnet.variants.Variant`); everything that differs between the
    variants is read from that spec (``self.spec``), never from the name.

    ``variant="coco"`` (the authors' ``models/slrnet_coco_pseudo.py``) is the weakly supervised network with two
    changes: the classification loss is BCE on the logits with positives weighted by ``pos_weight`` x
    ``class_weights`` (:func:`slrnet.losses.weighted_bce`), and pseudo labels come from peak-normalised maps with
    the config's ``cutoff_top`` / ``cutoff_low`` (:func:`slrnet.losses.pseudo_labels_peak_normalised`).

    ``variant="lid"`` (``models/slrnet_lid_wide.py``, for the 200 classes of L2ID) is the COCO network made wider:
    decoder, GCI, CVLR and heads at ``decoder_channels`` (512) while the backbone's stride-4 map stays 256 wide,
    so a 1x1 projection ``fc8_up`` (conv, BN, ReLU) lifts it for GCI; the skip projection has 96 channels (48
    elsewhere); the segmentation head has one 3x3 conv (dropout 0.3) instead of two; the auxiliary head's
    classification loss weighs 1 (0.4 elsewhere). ``focal_p`` / ``focal_c`` set the focal penalty of the scores.
    """

    def __init__(self, backbone: str = "resnet38", num_classes: int = 21, pretrained: str = "",
                 scale_factor: float = 0.5, use_flip: bool = False, pamr_iter: int = 10,
                 pamr_dilations=(1, 2, 4, 8, 12, 24), cutoff_top: float = 0.6, cutoff_low: float = 0.2,
                 temperature: float = 1.0, num_iters: int = 1, use_cvlr: bool = True,
                 decoder_channels: int = 256, aspp_dilations=(1, 12, 24, 36), variant: str | Variant = "wss",
                 bg_pow: float = 3.0, backbone_kwargs: dict | None = None, pos_weight: float = 1.0,
                 class_weights=None, focal_p: float = 3.0, focal_c: float = 0.01, reconstruction: str = "used"):
        super().__init__()
        spec = network_variant(variant.network if isinstance(variant, Variant) else variant, use_cvlr)
        if not spec.weighs_classes and (class_weights is not None or pos_weight != 1.0):
            readers = ", ".join(sorted(v.name for v in VARIANTS.values() if v.weighs_classes))
            raise ValueError(f"model.pos_weight / model.class_weights: only the COCO and L2ID variants (model.name: "
                             f"{readers}) use them")
        self.num_classes = num_classes
        self.spec = spec
        self.variant = spec.network
        self.predicts_background = spec.predicts_background   # head outputs K channels incl. background
        self.takes_pixel_labels = spec.takes_pixel_labels     # the trainer hands it the batch's pixel labels
        self.scale_factor, self.use_flip, self.use_cvlr = scale_factor, use_flip, use_cvlr
        if reconstruction not in RECONSTRUCTIONS or (reconstruction != "used" and not use_cvlr):
            raise ValueError(f"model.reconstruction: one of {RECONSTRUCTIONS} with the CVLR network, got "
                             f"{reconstruction!r}")
        self.reconstruction = reconstruction      # an ablation of what the heads see; "used" is the method
        self.cutoff_top, self.cutoff_low, self.bg_pow = cutoff_top, cutoff_low, bg_pow
        C = decoder_channels
        n_out = num_classes if self.predicts_background else num_classes - 1

        self.backbone = build_backbone(backbone, **(backbone_kwargs or {}))
        if pretrained:
            self.backbone.load_pretrained(pretrained)
        # ASPP BN statistics are frozen when the backbone is a frozen (pretrained) one, as in the
        # released recipe; a backbone trained from scratch (the teaching profile) trains them.
        self.freeze_aspp_stats = bool(getattr(self.backbone, "freeze_bn", True))
        wide = spec.wide
        # an integer power as the authors write it (pow(3) and pow(3.0) may round differently)
        self.focal_p = int(focal_p) if float(focal_p).is_integer() else float(focal_p)
        self.focal_c = float(focal_c)
        self.aux_cls_weight = spec.aux_cls_weight
        if self.backbone.shallow_channels != C and not wide:
            # GCI modulates the stride-4 backbone map with cues from the decoder features, channel by
            # channel (both 256 wide for WideResNet-38 and ResNet-101), so the widths must agree.
            raise ValueError(f"model.decoder_channels ({C}) must equal the {backbone!r} backbone's shallow "
                             f"channels ({self.backbone.shallow_channels}); for 'tiny' that is 2 * width")
        self.aspp = ASPP(self.backbone.deep_channels, C, dilations=tuple(aspp_dilations), norm_layer=_BatchNorm)
        self._aff = PAMR(pamr_iter, tuple(pamr_dilations))
        self.shallow_mask = GCI(C, norm_layer=_BatchNorm)
        self.sg = StochasticGate(0.3)
        skip = 96 if wide else 48
        self.fc8_skip = nn.Sequential(nn.Conv2d(self.backbone.shallow_channels, skip, 1, bias=False),
                                      _BatchNorm(skip), nn.ReLU())
        self.fc8_x = nn.Sequential(nn.Conv2d(C + skip, C, 3, padding=1, bias=False), _BatchNorm(C), nn.ReLU())
        if wide:
            self.last_conv = nn.Sequential(nn.Conv2d(C, C, 3, padding=1, bias=False), _BatchNorm(C), nn.ReLU(),
                                           Dropout(0.3), nn.Conv2d(C, n_out, 1))
        else:
            self.last_conv = nn.Sequential(nn.Conv2d(C, C, 3, padding=1, bias=False), _BatchNorm(C), nn.ReLU(),
                                           Dropout(0.5),
                                           nn.Conv2d(C, C, 3, padding=1, bias=False), _BatchNorm(C), nn.ReLU(),
                                           Dropout(0.1),
                                           nn.Conv2d(C, n_out, 1))
        new = [self.aspp, self.shallow_mask, self.sg, self.fc8_skip, self.fc8_x, self.last_conv]
        self.newly_added = nn.ModuleList(new)
        if use_cvlr:
            self.factorization_reconstruction = FactorizationReconstruction(C, num_iters=num_iters,
                                                                            temperature=temperature)
            self.initialize_dictionary = DictionaryInitialization()
            self.aux_head = nn.Sequential(nn.Conv2d(C, C, 3, padding=1, bias=False), _BatchNorm(C), nn.ReLU(),
                                          Dropout(0.5), nn.Conv2d(C, n_out, 1))
            self.newly_added.extend([self.factorization_reconstruction, self.initialize_dictionary,
                                     self.aux_head])
        self.fc8_up = None
        if wide:   # the stride-4 backbone map (256 ch) lifted to the decoder width for GCI
            self.fc8_up = nn.Sequential(nn.Conv2d(self.backbone.shallow_channels, C, 1, bias=False), _BatchNorm(C),
                                        nn.ReLU())
            self.newly_added.append(self.fc8_up)
        if spec.weighs_classes:
            # COCO's classification loss weights positives by pos_weight x class_weights (the authors register
            # the weights as a buffer, so their checkpoints hold a "class_weights" key)
            self.pos_weight = float(pos_weight)
            if class_weights is not None:
                weights = torch.as_tensor(class_weights, dtype=torch.float32)
                if weights.shape != (num_classes - 1,):
                    raise ValueError(f"model.class_weights: expected {num_classes - 1} numbers, "
                                     f"got {tuple(weights.shape)}")
                self.register_buffer("class_weights", weights)
            else:
                self.class_weights = None
        self.register_buffer("_mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self._init_new_weights()

    # ------------------------------------------------------------------ set-up
    def _init_new_weights(self):
        for m in self.newly_added.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.freeze_aspp_stats:
            for m in self.aspp.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """[backbone weights, backbone biases, new weights, new biases] (trainable, each once)."""
        return parameter_groups(self)

    def classification_terms(self) -> float | None:
        """How many multi-label soft-margin terms ``losses["cls"]`` sums (view 1, view 2, the auxiliary head at its
        weight), so a caller can compare it with the label prior's loss; None when the loss is not that sum (the
        semi variants replace it for pixel-labelled images, the COCO / L2ID ones weigh their BCE)."""
        if not self.spec.sums_soft_margin_terms:
            return None
        return 2.0 + self.aux_cls_weight if self.use_cvlr else 1.0

    # ------------------------------------------------------------------ pieces
    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images -> [0, 1] RGB, the input PAMR's affinities are computed from."""
        return images * self._std.to(images.dtype) + self._mean.to(images.dtype)

    def features(self, images: torch.Tensor):
        """Decoder features X (B, C, H/4, W/4) and the shallow backbone map (stride 4)."""
        feats = self.backbone(images)
        x = self.aspp(feats["deep"])                                    # (B, C, H/8, W/8)
        skip = self.fc8_skip(feats["shallow"])                          # (B, 48, H/4, W/4)
        x = self.fc8_x(torch.cat([resize(x, skip.shape[-2:]), skip], dim=1))
        return x, feats["shallow"]

    def head(self, x: torch.Tensor, shallow: torch.Tensor):
        """Segmentation head -> (logits (B, K, h, w), masks (B, K, h, w))."""
        if self.fc8_up is not None:
            shallow = self.fc8_up(shallow)
        x = self.sg(x, self.shallow_mask(shallow, x))
        logits = self.last_conv(x)
        if not self.predicts_background:
            logits = with_background(logits, "constant")                # (B, K, h, w)
        return logits, logits.softmax(dim=1)

    def aux(self, x: torch.Tensor):
        logits = self.aux_head(x)
        if not self.predicts_background:
            logits = with_background(logits, "one_minus_max")           # (B, K, h, w)
        return logits, logits.softmax(dim=1)

    def factorise(self, x1: torch.Tensor, aux_logits: torch.Tensor, *others: torch.Tensor,
                  return_iterates: bool = False, **cvlr_options):
        """CVLR over view 1 and any further views -> (per-view features, per-view codes, dictionary).

        With ``return_iterates`` a fourth item holds the module's iterates (``FactorizationReconstruction``) plus
        ``dictionary_init`` D0 (B, C, K) and ``output`` (B, N, C); ``cvlr_options`` (``num_iters``,
        ``temperature``) override the module's for this call."""
        views = (x1,) + others
        d0 = self.initialize_dictionary(x1, aux_logits.detach()).detach()   # (B, C, K)
        flat = torch.cat([v.flatten(2) for v in views], dim=2).transpose(1, 2)   # (B, N1+N2, C)
        cvlr_options.setdefault("reconstruction", self.reconstruction)
        x_out, coding, dictionary, *extra = self.factorization_reconstruction(
            flat, d0.transpose(1, 2), return_iterates=return_iterates, **cvlr_options)
        shapes = [v.shape[-2:] for v in views]
        feats = split_views(x_out.transpose(1, 2), shapes)                 # [(B, C, h, w)] per view
        codes = split_views(coding, shapes)                                # [(B, K, h, w)] per view
        if not return_iterates:
            return feats, codes, dictionary
        return feats, codes, dictionary, {**extra[0], "dictionary_init": d0, "input": flat, "output": x_out}

    def second_view(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """View 2 = image resized by ``scale_factor`` (optionally flipped) -> (view, inverse map, flipped).

        ``flipped`` (B,) bool says which images were flipped (None when the model does not flip); ``inverse(y, size)``
        maps a view-2 map back onto view 1 (un-flip, resize)."""
        H, W = images.shape[-2:]
        view = resize(images, (int(H * self.scale_factor), int(W * self.scale_factor)))
        flip = None
        if self.use_flip:
            flip = torch.rand(images.shape[0], generator=generator, device="cpu") < 0.5
            flip = flip.to(images.device)
            view = torch.where(flip[:, None, None, None], view.flip(-1), view)

        def inverse(y: torch.Tensor, size) -> torch.Tensor:
            if flip is not None:
                y = torch.where(flip[:, None, None, None], y.flip(-1), y)
            return resize(y, size)

        return view, inverse, flip

    # ------------------------------------------------------------------ forward passes
    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                pixel_labels: torch.Tensor | None = None, has_mask: torch.Tensor | None = None,
                seg_loss: bool = True) -> dict:
        """Training forward: every loss term (unweighted) and the maps for figures.

        images (B, 3, H, W) normalised; labels (B, K-1) multi-hot image labels (None for the
        semi_wo_cls variant); pixel_labels (B, H, W) with 255 void and ``has_mask`` (B,) bool for
        the semi-supervised variants. Returns {"losses": {...}, "maps": {...}, "scores": ...}.
        Semi variants also return ``losses["seg_labelled"]`` (seg loss of the pixel-labelled images,
        on from the first epoch) and put the seg loss in place of their classification loss.
        ``seg_loss=False`` (the trainer's pretraining epochs, which do not add it) skips the pseudo labels (PAMR)
        and the seg loss of a variant without pixel labels: the other losses and their gradients are unchanged.
        """
        if not self.use_cvlr:
            return self._forward_single_stage(images, labels, seg_loss)
        if not self.spec.uses_image_labels:
            labels = None   # wo_cls: image labels are unknown for most images, so none are used at all
        H, W = images.shape[-2:]
        view2, inverse, _ = self.second_view(images)
        x1, s1 = self.features(images)
        x2, s2 = self.features(view2)
        aux_logits, aux_masks = self.aux(x1)
        (x1, x2), (z1, z2), dictionary, factors = self.factorise(x1, aux_logits, x2, return_iterates=True)
        logits1, masks1 = self.head(x1, s1)
        logits2, masks2 = self.head(x2, s2)
        size = logits1.shape[-2:]
        logits2_up, masks2_up, z2_up = inverse(logits2, size), inverse(masks2, size), inverse(z2, size)
        diagnostics = self.factor_diagnostics(factors, z1, z2_up)

        losses = {"code": L.code_consistency(z1, z2_up)}
        fg_labels = labels if labels is not None else torch.ones_like(masks1[:, 1:, 0, 0])
        losses["mask"] = L.mask_consistency(masks1, masks2_up, fg_labels)
        scores = None
        if not self.predicts_background:
            scores = self.scores(logits1, masks1)
            scores2 = self.scores(logits2, masks2)
            scores_aux = self.scores(aux_logits, aux_masks)
            losses["cls_per_image"] = over_views(self.classification_loss(scores, labels),
                                                 self.classification_loss(scores2, labels),
                                                 self.classification_loss(scores_aux, labels), self.aux_cls_weight)
            losses["cls"] = losses["cls_per_image"].mean()
        shown = {"masks": resize(masks1.detach(), (H, W)), "codes": z1.detach(), "codes2": z2_up.detach()}
        if not seg_loss and not self.takes_pixel_labels:
            return {"losses": losses, "maps": shown, "scores": scores, "dictionary": dictionary,
                    "diagnostics": diagnostics}

        with torch.no_grad():
            cam = (masks1.detach() + masks2_up.detach()) / 2
            maps = self._pseudo_labels(images, cam, labels, (H, W), pixel_labels, has_mask)
        seg_labels = None if self.predicts_background else labels
        targets = L.seg_targets(maps["pseudo_gt"], logits1.dtype)         # shared by the three terms
        seg = over_views(L.balanced_ce(logits1, maps["pseudo_gt"], seg_labels, targets=targets),
                         L.balanced_ce(logits2_up, maps["pseudo_gt"], seg_labels, targets=targets),
                         L.balanced_ce(aux_logits, maps["pseudo_gt"], seg_labels, targets=targets),
                         AUX_SEG_WEIGHT)                                  # (B,)
        losses["seg_per_image"] = seg
        losses["seg"] = seg.mean()
        if self.takes_pixel_labels:
            labelled = has_mask if pixel_labels is not None else None
            losses["cls_per_image"], losses["seg_labelled"] = L.semi_supervised_terms(
                losses.get("cls_per_image"), seg, labelled)
            losses["cls"] = losses["cls_per_image"].mean()
        maps.update(shown)
        return {"losses": losses, "maps": maps, "scores": scores, "dictionary": dictionary, "diagnostics": diagnostics}

    @torch.no_grad()
    def factor_diagnostics(self, factors: dict, z1: torch.Tensor, z2_up: torch.Tensor) -> dict:
        """Is the low-rank module factorising? (:mod:`slrnet.diagnostics`) from ``factorise``'s iterates."""
        fr = self.factorization_reconstruction
        features = fr.transform1(factors["input"])                                       # X' = W1 x   (B, N, C)
        scores = torch.bmm(factors["dictionaries"][-2], features.transpose(1, 2)) * fr.scale   # (B, K, N)
        return factor_diagnostics(factors["codes"][-1], z1, z2_up, factors["dictionaries"],
                                  factors["reconstruction"], factors["input"], scores)

    def scores(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Class scores (B, K-1): nGWP pooling + the focal penalty (``focal_p``, ``focal_c``)."""
        return L.nGWP_scores(logits, masks, focal_p=self.focal_p, focal_c=self.focal_c)

    def classification_loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-image classification loss (B,): multi-label soft margin, or COCO's positive-weighted BCE."""
        if not self.spec.weighs_classes:
            return L.multilabel_soft_margin(scores, labels, reduction="none")
        pos_weight = torch.full_like(scores[0], self.pos_weight)
        if self.class_weights is not None:
            pos_weight = self.class_weights.to(scores.dtype) * self.pos_weight
        return L.weighted_bce(scores, labels, pos_weight, reduction="none")

    def _forward_single_stage(self, images, labels, seg_loss: bool = True):
        H, W = images.shape[-2:]
        x, s = self.features(images)
        logits, masks = self.head(x, s)
        losses = {}
        scores = self.scores(logits, masks)
        losses["cls_per_image"] = self.classification_loss(scores, labels)
        losses["cls"] = losses["cls_per_image"].mean()
        zero = logits.sum() * 0
        losses["mask"], losses["code"] = zero, zero
        maps = {"masks": resize(masks.detach(), (H, W))}
        if seg_loss:
            with torch.no_grad():
                maps.update(self._pseudo_labels(images, masks.detach(), labels, (H, W)))
            losses["seg_per_image"] = L.balanced_ce(logits, maps["pseudo_gt"], labels)
            losses["seg"] = losses["seg_per_image"].mean()
        return {"losses": losses, "maps": maps, "scores": scores, "dictionary": None}

    def _pseudo_labels(self, images, cam, labels, size, pixel_labels=None, has_mask=None) -> dict:
        """PAMR-refine the averaged view masks, drop absent classes, threshold (no gradient).

        Semi-supervised (``pixel_labels`` (B, H, W), ``has_mask`` (B,)): a pixel-labelled image's pseudo label
        is its one-hot ground truth (void pixels all zero), which also stands as its ``refined`` map. PAMR and
        the thresholds run on the other images only: every step of them works image by image, so their pseudo
        labels equal those of refining the whole batch (tests/test_semi.py checks it), for less work.
        """
        cam_full = _drop_absent(resize(cam, size), labels)
        if pixel_labels is None or has_mask is None or not bool(has_mask.any()):
            refined, pseudo = self._refine(images, cam, labels, size)
            return {"cam": cam_full, "refined": refined, "pseudo_gt": pseudo}
        dtype = torch.promote_types(images.dtype, cam.dtype)             # PAMR's result dtype
        blank = cam.new_zeros(cam.shape[0], self.num_classes, *size, dtype=dtype)
        pseudo = L.replace_with_ground_truth(blank, pixel_labels, has_mask, self.num_classes)   # (B, K, H, W)
        refined = pseudo.clone()
        rest = ~has_mask.bool()                                            # (B,) images without pixel labels
        if bool(rest.any()):
            refined[rest], pseudo[rest] = self._refine(images[rest], cam[rest],
                                                       None if labels is None else labels[rest], size)
        return {"cam": cam_full, "refined": refined, "pseudo_gt": pseudo}

    def _refine(self, images, cam, labels, size) -> tuple[torch.Tensor, torch.Tensor]:
        """(refined (B, K, H, W), pseudo label (B, K, H, W)) of ``cam`` (B, K, h, w), PAMR at mask size."""
        rule = self.spec.pseudo_labels
        bg_pow = self.bg_pow if rule == "own_background" else None
        refined = _drop_absent(resize(run_pamr(self._aff, self.denormalize(images), cam, bg_pow=bg_pow), size),
                               labels)
        if rule == "own_background":   # the head's own background channel, the config's cut-offs (0.8 and 0.6)
            pseudo = L.pseudo_labels(refined, bg_factor=0.9, cutoff_top=self.cutoff_top, cutoff_low=self.cutoff_low)
        elif rule == "peak_normalised":   # peak-normalised maps, the config's cut-offs (0.5 and 0.1)
            pseudo = L.pseudo_labels_peak_normalised(refined, self.cutoff_top, self.cutoff_low)
        else:   # "fixed": the released Net always uses the default thresholds (fixture README section 4)
            pseudo = L.pseudo_labels(refined)
        return refined, pseudo

    @torch.no_grad()
    def predict(self, images: torch.Tensor, multi_view: bool = False) -> dict:
        """Test-time forward: {"scores": (B, K-1) or None, "masks": (B, K, H, W) probabilities}.

        Single view by default (the dictionary comes from the image's own aux head);
        ``multi_view=True`` also runs the ``scale_factor`` view and averages, as the authors' test mode.
        """
        H, W = images.shape[-2:]
        x1, s1 = self.features(images)
        if not self.use_cvlr:
            logits, masks = self.head(x1, s1)
            scores = self.scores(logits, masks)
            return {"scores": scores, "masks": resize(masks, (H, W))}
        aux_logits, _ = self.aux(x1)
        if not multi_view:
            (x1,), _, _ = self.factorise(x1, aux_logits)
            logits, masks = self.head(x1, s1)
            scores = None if self.predicts_background else self.scores(logits, masks)
            return {"scores": scores, "masks": resize(masks, (H, W))}
        view2, inverse, _ = self.second_view(images)
        x2, s2 = self.features(view2)
        (x1, x2), _, _ = self.factorise(x1, aux_logits, x2)
        logits1, masks1 = self.head(x1, s1)
        logits2, masks2 = self.head(x2, s2)
        masks = (masks1 + inverse(masks2, masks1.shape[-2:])) / 2
        scores = None
        if not self.predicts_background:
            scores = (self.scores(logits1, masks1) + self.scores(logits2, masks2)) / 2
        return {"scores": scores, "masks": resize(masks, (H, W))}


def _drop_absent(maps: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Zero the foreground channels of classes absent from the image labels (B, K-1); None keeps all."""
    if labels is None:
        return maps
    keep = labels[:, :, None, None].to(maps.dtype)
    return torch.cat([maps[:, :1], maps[:, 1:] * keep], dim=1)


def build_model(cfg_model: dict) -> nn.Module:
    """Factory from a config's ``model`` section (original keys; see slrnet.config.DEFAULTS): an ``SLRNet``
    variant, or the second stage's ``DeepLabV3Plus`` (``model.name: deeplabv3plus``)."""
    cfg = dict(cfg_model)
    spec = variant(cfg.pop("name", "slrnet"))
    if spec.architecture == "DeepLabV3Plus":
        from slrnet.models.deeplab import DeepLabV3Plus

        return DeepLabV3Plus(**{k: cfg[k] for k in spec.model_keys if k in cfg and k != "name"})
    cfg["use_cvlr"] = bool(cfg.get("use_cvlr", True)) and spec.use_cvlr
    known = {"backbone", "num_classes", "pretrained", "scale_factor", "use_flip", "pamr_iter", "pamr_dilations",
             "cutoff_top", "cutoff_low", "temperature", "num_iters", "use_cvlr", "reconstruction", "decoder_channels",
             "aspp_dilations", "bg_pow", "backbone_kwargs", "pos_weight", "class_weights", "focal_p", "focal_c"}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"model: unknown keys {sorted(unknown)}")
    return SLRNet(variant=spec, **cfg)


def build_trained_model(cfg_model: dict, state, source: str = "checkpoint",
                        dtype: torch.dtype | None = None) -> nn.Module:
    """A trained model: :func:`build_model` without reading ``model.pretrained`` (every weight, the backbone's
    included, comes from ``state``), then ``state`` loaded strictly. ``state`` may be a bare state_dict or one
    wrapped in ``{'state_dict': ...}`` / ``{'model': ...}``; ``source`` names it in errors. ``dtype`` (e.g.
    ``torch.float64``) casts the model *before* loading, so a float64 checkpoint keeps every bit."""
    from slrnet.checkpoint import StateDictMismatchError, load_state_dict_strict

    model = build_model({**cfg_model, "pretrained": ""})
    if dtype is not None:
        model.to(dtype)
    try:
        load_state_dict_strict(model, state, source=source)
    except StateDictMismatchError as err:
        # the class head's 1x1 conv
        classifier = f"last_conv.{len(model.last_conv) - 1}.weight" if hasattr(model, "last_conv") else "classifier.weight"
        head = {k: (a, b) for k, a, b in err.report.mismatched if k == classifier}
        if head:
            file_out, model_out = head[classifier][0][0], head[classifier][1][0]
            extra = 0 if model.predicts_background else 1          # + the constant background channel
            raise StateDictMismatchError(
                f"{source} was trained for {file_out + extra} classes but the config's model.num_classes is "
                f"{model_out + extra} ({model.variant} variant); use the config the checkpoint was trained with, "
                f"or set model.num_classes={file_out + extra}. {err}", err.report) from None
        raise
    return model
