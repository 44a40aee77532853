"""The training objective of METHOD.md section 2, written once: the network computes each term per view with
:func:`over_views`, the trainer weighs the terms with :func:`total_loss`.

    L_cls = l_cls(view 1) + l_cls(inv(view 2)) + w_aux · l_cls(aux)        w_aux = 0.4 (1 for L2ID's wide network)
    L_seg = bCE(view 1)   + bCE(inv(view 2))   + 0.4 · bCE(aux)
    total = c0·L_cls + c1·L_mask + c2·L_code + [epoch > pretrain_epochs]·c3·L_seg  (+ c3·L_seg_labelled)

``(c0, c1, c2, c3)`` is ``train.loss_coeff`` ((1, 4, 4, 1) on VOC). ``L_seg_labelled``, the segmentation loss of the
pixel-labelled images of the semi-supervised variants (METHOD.md section 4), is on from the first epoch; those
images' classification term is their segmentation loss (:func:`slrnet.losses.semi_supervised_terms`).

    >>> from slrnet.objective import total_loss
    >>> total_loss({"cls": t(0.7), "mask": t(0.1), "code": t(0.05), "seg": t(0.9)}, (1, 4, 4, 1), seg_on=True)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

AUX_SEG_WEIGHT = 0.4   # the auxiliary head's share of the segmentation loss (every variant)


def over_views(view1: torch.Tensor, view2: torch.Tensor, aux: torch.Tensor, aux_weight: float) -> torch.Tensor:
    """A loss term over the two views and the auxiliary head: ``view1 + view2 + aux_weight · aux``."""
    return view1 + view2 + aux_weight * aux


def total_loss(terms: Mapping[str, torch.Tensor], coeff: Sequence[float], seg_on: bool) -> torch.Tensor:
    """``c0·cls + c1·mask + c2·code (+ c3·seg_labelled) (+ c3·seg when seg_on)`` from scalar terms."""
    c = coeff
    loss = c[0] * terms["cls"] + c[1] * terms["mask"] + c[2] * terms["code"]
    if "seg_labelled" in terms:      # the pixel-labelled images: segmentation loss on from the start
        loss = loss + c[3] * terms["seg_labelled"]
    if seg_on:                       # the self-supervised segmentation loss, after the pretraining epochs
        loss = loss + c[3] * terms["seg"]
    return loss
