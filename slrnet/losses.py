"""SLRNet's losses and the pseudo-label machinery (METHOD.md sections 1.8, 2 and 4).

    >>> from slrnet import losses as L
    >>> scores = L.nGWP_scores(logits, logits.softmax(1))               # (B, K, h, w) -> (B, K-1)
    >>> loss_cls = L.multilabel_soft_margin(scores, labels)             # labels (B, K-1) multi-hot
    >>> pseudo = L.pseudo_labels(refined_masks)                         # {0, 1} (B, K, H, W), all-zero = ignore
    >>> loss_seg = L.balanced_ce(logits, pseudo, labels)                # (B,)
    >>> loss_mask = L.mask_consistency(masks1, masks2_up, labels)       # scalar
    >>> loss_code = L.code_consistency(codes1, codes2_up)               # scalar

* Class scores: normalised global weighted pooling (nGWP) plus a focal penalty on the mean mask,
  s_k = sum_n x_kn m_kn / (1 + sum_n m_kn) + (1 - mean_n m_kn)^3 log(0.01 + mean_n m_kn), background dropped.
* Pseudo labels: per-class thresholds max(f_k * max_n m_k, low), strict ">", ambiguous or
  unclaimed pixels ignored. ``low`` goes through float32 first, as in the original, where it was
  created as a default-dtype (float32) tensor: for float64 data 0.2 becomes 0.20000000298023224.
* Balanced CE: per-pixel cross entropy weighted by (N_total - N_c) / (1 + N_total) of the pixel's
  pseudo class, averaged over all pixels (ignored ones count as 0), dropped (beta = 0) for an image
  whose pseudo label does not hold as many classes as its image labels plus background.
* Cross-view consistency: L1 between view-1 masks and the inverse-mapped view-2 masks (weighted
  by the image labels), and between the keep-max codes of both views.

Every formula is checked against the authors' outputs in ``tests/fixtures`` (reference README
sections 4-6 and 8). References: Araslanov & Roth, CVPR 2020 (nGWP, focal penalty, pseudo labels,
balanced CE); Pan et al., SLRNet, IJCV 2022 (cross-view consistency).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from slrnet.ops import resize

IGNORE_INDEX = 255


# ----------------------------------------------------------------------------- classification
def focal_penalty(v: torch.Tensor, p: float = 3, c: float = 0.01) -> torch.Tensor:
    """(1 - v)^p * log(c + v): pushes the mean mask of a present class away from 0."""
    return (1 - v).pow(p) * torch.log(c + v)


def nGWP_scores(logits: torch.Tensor, masks: torch.Tensor, focal_p: float = 3, focal_c: float = 0.01) -> torch.Tensor:
    """Normalised global weighted pooling + focal penalty; logits, masks (B, K, h, w) -> (B, K-1)."""
    if logits.shape != masks.shape or logits.dim() != 4:
        raise ValueError(f"nGWP_scores: logits {tuple(logits.shape)} and masks {tuple(masks.shape)} must both be "
                         "(B, K, h, w)")
    x, m = logits.flatten(2), masks.flatten(2)                      # (B, K, N)
    pooled = (x * m).sum(-1) / (1.0 + m.sum(-1))                     # (B, K)
    scores = pooled + focal_penalty(m.mean(-1), p=focal_p, c=focal_c)   # (B, K)
    return scores[:, 1:]                                             # background has no image label


def multilabel_soft_margin(scores: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean over classes of -[y log sigmoid(s) + (1 - y) log sigmoid(-s)]; (B,) with reduction="none"."""
    if scores.shape != labels.shape:
        raise ValueError(f"multilabel_soft_margin: scores {tuple(scores.shape)} and labels {tuple(labels.shape)} "
                         "must have the same shape (B, K-1)")
    return F.multilabel_soft_margin_loss(scores, labels.to(scores.dtype), reduction=reduction)


def weighted_bce(scores: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor,
                 reduction: str = "mean") -> torch.Tensor:
    """COCO's classification loss: binary cross entropy on the logits, positives weighted per class.

    Mean over classes of -[w_k y log sigmoid(s) + (1 - y) log sigmoid(-s)], (B,) with reduction="none"; the
    authors' ``slrnet_coco_pseudo`` uses w = 10 x per-class weights (rare classes weigh more), so an 80-way
    label vector that is almost all zeros does not teach the head to say "absent" everywhere.
    """
    if scores.shape != labels.shape or pos_weight.shape != scores.shape[-1:]:
        raise ValueError(f"weighted_bce: scores {tuple(scores.shape)}, labels {tuple(labels.shape)} must be (B, K-1) "
                         f"and pos_weight {tuple(pos_weight.shape)} (K-1,)")
    per_element = F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype), reduction="none",
                                                     pos_weight=pos_weight.to(scores.dtype))
    per_image = per_element.mean(dim=-1)                              # (B,)
    return per_image.mean() if reduction == "mean" else per_image


# ----------------------------------------------------------------------------- pseudo labels
def pseudo_labels(probs: torch.Tensor, bg_factor: float = 0.7, cutoff_top: float = 0.6,
                  cutoff_low: float = 0.2) -> torch.Tensor:
    """Threshold masks (B, K, H, W) (channel 0 = background) into a {0, 1} pseudo label, same dtype.

    Pixel x is class k if m_k(x) > max(f_k * max_x m_k, low) with f_0 = bg_factor, f_k = cutoff_top;
    pixels claimed by several classes are zeroed (ignored), as are pixels claimed by none.
    """
    if probs.dim() != 4 or not probs.is_floating_point():
        raise ValueError(f"pseudo_labels: expected floating probs (B, K, H, W), got {tuple(probs.shape)} {probs.dtype}")
    peak = probs.flatten(2).max(dim=-1).values                       # (B, K)
    tau = peak.clone()
    tau[:, :1] *= bg_factor           # scalar products in the data dtype, as the original
    tau[:, 1:] *= cutoff_top
    # the original's floor is a default-dtype (float32) tensor cast to the data dtype
    low = torch.tensor(cutoff_low, dtype=torch.float32).to(device=probs.device, dtype=probs.dtype)
    tau = torch.maximum(tau, low)
    selected = probs > tau[:, :, None, None]                          # (B, K, H, W) bool
    ambiguous = selected.sum(dim=1, keepdim=True) > 1                 # (B, 1, H, W)
    return (selected & ~ambiguous).to(probs.dtype)


def pseudo_labels_peak_normalised(probs: torch.Tensor, cutoff_top: float = 0.5,
                                  cutoff_low: float = 0.1) -> torch.Tensor:
    """COCO's pseudo-label rule (the authors' ``slrnet_coco_pseudo.pseudo_gtmask``), {0, 1} (B, K, H, W).

    Each class map is divided by its peak (m_k / (max_x m_k + 1e-6)); a pixel is foreground class k where that
    exceeds ``cutoff_top``, background where no foreground class exceeds ``cutoff_low``; pixels claimed twice
    are ignored (all zero), and so are those between the two cut-offs. Unlike :func:`pseudo_labels` the
    background map itself is never thresholded, and ``probs`` is left unchanged (the original divides in place).
    """
    if probs.dim() != 4 or not probs.is_floating_point():
        raise ValueError(f"pseudo_labels_peak_normalised: expected floating probs (B, K, H, W), got "
                         f"{tuple(probs.shape)} {probs.dtype}")
    m = probs / (F.adaptive_max_pool2d(probs, (1, 1)) + 1e-6)           # (B, K, H, W), peaks at ~1
    fg = (m[:, 1:] > cutoff_top).to(probs.dtype)                       # (B, K-1, H, W)
    bg = ((m[:, 1:] > cutoff_low).sum(dim=1, keepdim=True) < 1).to(probs.dtype)   # (B, 1, H, W)
    pseudo = torch.cat([bg, fg], dim=1)
    return pseudo * (pseudo.sum(dim=1, keepdim=True) <= 1).to(probs.dtype)


def pseudo_label_targets(pseudo_gt: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """{0, 1} (B, K, H, W) -> class index map (B, H, W) int64, ``ignore_index`` where no class is set."""
    if pseudo_gt.dim() != 4:
        raise ValueError(f"pseudo_label_targets: expected pseudo_gt (B, K, H, W), got {tuple(pseudo_gt.shape)}")
    # max(...).indices returns the first maximal index like argmax, but reduces over a strided channel
    # dim ~9x faster on CPU (argmax(dim=1) took 30 ms of a 190 ms training step at batch 16, 96 px)
    target = pseudo_gt.max(dim=1).indices                             # (B, H, W)
    return target.masked_fill(pseudo_gt.sum(dim=1) < 1, ignore_index)


def replace_with_ground_truth(pseudo_gt: torch.Tensor, pixel_labels: torch.Tensor, has_mask: torch.Tensor,
                              num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Semi-supervised: images with pixel labels (``has_mask``) get their one-hot ground truth
    (void pixels all zero = ignored) instead of the pseudo label. Shapes: (B, K, H, W), (B, H, W), (B,)."""
    B, K, H, W = pseudo_gt.shape
    if K != num_classes or tuple(pixel_labels.shape) != (B, H, W) or has_mask.shape != (B,):
        raise ValueError(f"replace_with_ground_truth: expected pseudo_gt (B, {num_classes}, H, W), pixel_labels "
                         f"(B, H, W), has_mask (B,), got {tuple(pseudo_gt.shape)}, {tuple(pixel_labels.shape)}, "
                         f"{tuple(has_mask.shape)}")
    labels = pixel_labels.long()
    void = labels == ignore_index                                     # (B, H, W)
    rows = has_mask.bool()
    if bool(rows.any()):
        checked = labels[rows].masked_fill(void[rows], 0)
        if checked.min() < 0 or checked.max() >= num_classes:
            known = labels[rows][~void[rows]]
            raise ValueError(f"replace_with_ground_truth: pixel labels must be in [0, {num_classes}) or "
                             f"{ignore_index}, got values in [{int(known.min())}, {int(known.max())}]")
    # one-hot scattered straight into the pseudo label's dtype, without F.one_hot's int64 (B, H, W, K) tensor to
    # permute and cast (benchmarks/semi_step.py)
    one_hot = torch.zeros_like(pseudo_gt).scatter_(1, labels.clamp(0, num_classes - 1)[:, None], 1)
    one_hot.masked_fill_(void[:, None], 0)                            # (B, K, H, W), void pixels all zero
    return torch.where(rows[:, None, None, None], one_hot, pseudo_gt)


def semi_supervised_terms(cls_per_image: torch.Tensor | None, seg_per_image: torch.Tensor,
                          has_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Semi-supervised per-image losses (METHOD.md section 4) -> (cls_per_image (B,), seg_labelled ()).

    A pixel-labelled image's classification loss is replaced by its segmentation loss (wo_cls: the
    others have no classification loss, ``cls_per_image=None`` counts as zeros). ``seg_labelled`` is the
    mean segmentation loss over the pixel-labelled images, the term that stays on during pretraining;
    0 (still part of the graph) when the batch has none, where the original's empty mean gives NaN
    in the logged value (its gradient is zero).
    """
    B = seg_per_image.shape[0]
    labelled = torch.zeros(B, dtype=torch.bool, device=seg_per_image.device) if has_mask is None else has_mask.bool()
    if labelled.shape != (B,):
        raise ValueError(f"semi_supervised_terms: has_mask must be (B,) = ({B},), got {tuple(labelled.shape)}")
    if cls_per_image is None:
        cls_per_image = torch.zeros_like(seg_per_image)
    cls_per_image = torch.where(labelled, seg_per_image, cls_per_image)
    weights = labelled.to(seg_per_image.dtype)
    seg_labelled = (seg_per_image * weights).sum() / weights.sum().clamp(min=1)
    return cls_per_image, seg_labelled


# ----------------------------------------------------------------------------- segmentation
class SegTargets(NamedTuple):
    """What :func:`balanced_ce` needs from a pseudo label; made once when several logits share it."""
    target: torch.Tensor          # (B, H, W) int64 class index, ignore_index where no class is set
    pixel_weight: torch.Tensor    # (B, H, W) class-balancing weight, 0 where ignored
    present: torch.Tensor         # (B,) classes (background included) the pseudo label holds


def seg_targets(pseudo_gt: torch.Tensor, dtype: torch.dtype | None = None,
                ignore_index: int = IGNORE_INDEX) -> SegTargets:
    """The targets and class-balancing weights of a {0, 1} pseudo label (B, K, H, W), weights in ``dtype``
    (that of the logits; default the pseudo label's)."""
    gt = pseudo_gt.to(dtype or pseudo_gt.dtype)
    per_class = gt.flatten(2).sum(-1)                                 # (B, K) pixels per class
    total = per_class.sum(-1, keepdim=True)                           # (B, 1)
    class_weight = (total - per_class) / (1 + total)                  # (B, K): rare classes weigh more
    pixel_weight = (gt * class_weight[:, :, None, None]).sum(1)       # (B, H, W), 0 where ignored
    return SegTargets(pseudo_label_targets(gt, ignore_index), pixel_weight, (per_class > 0).sum(-1))


def balanced_ce(logits: torch.Tensor, pseudo_gt: torch.Tensor, labels: torch.Tensor | None = None,
                ignore_index: int = IGNORE_INDEX, targets: SegTargets | None = None) -> torch.Tensor:
    """Class-balanced cross entropy of logits (B, K, h, w) against a {0, 1} pseudo label (B, K, H, W).

    Returns (B,). With ``labels`` (B, K-1) an image counts only if its pseudo label holds as many
    classes (background included) as its labels + 1 (counts compared, not identities, as the
    original); ``labels=None`` is the semi-supervised wo_cls variant without that rule. ``targets``:
    ``seg_targets(pseudo_gt, logits.dtype)`` computed once for several logits (the same result).
    """
    if logits.dim() != 4 or pseudo_gt.dim() != 4 or logits.shape[:2] != pseudo_gt.shape[:2]:
        raise ValueError(f"balanced_ce: expected logits (B, K, h, w) and pseudo_gt (B, K, H, W), got "
                         f"{tuple(logits.shape)} and {tuple(pseudo_gt.shape)}")
    B, K, H, W = pseudo_gt.shape
    logits = resize(logits, (H, W))                              # (B, K, H, W)
    if targets is None:
        targets = seg_targets(pseudo_gt, logits.dtype, ignore_index)
    elif targets.target.shape != (B, H, W):
        raise ValueError(f"balanced_ce: targets are for {tuple(targets.target.shape)}, expected ({B}, {H}, {W})")
    ce = F.cross_entropy(logits, targets.target, ignore_index=ignore_index, reduction="none")   # (B, H, W)
    loss = (targets.pixel_weight * ce).flatten(1).mean(-1)            # (B,) mean over all pixels
    if labels is None:
        return loss
    if labels.shape != (B, K - 1):
        raise ValueError(f"balanced_ce: expected labels (B, K-1) = ({B}, {K - 1}), got {tuple(labels.shape)}")
    beta = (labels.sum(-1) + 1 == targets.present).to(loss.dtype)     # (B,)
    return beta * loss


# ----------------------------------------------------------------------------- cross-view consistency
def mask_consistency(mask1: torch.Tensor, mask2_up: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean over (b, k >= 1, pixels) of |M1 - inv(M2)| * y_k; absent classes count as zeros."""
    if mask1.shape != mask2_up.shape or mask1.dim() != 4 or labels.shape != (mask1.shape[0], mask1.shape[1] - 1):
        raise ValueError(f"mask_consistency: expected mask1, mask2_up (B, K, h, w) and labels (B, K-1), got "
                         f"{tuple(mask1.shape)}, {tuple(mask2_up.shape)}, {tuple(labels.shape)}")
    diff = (mask1[:, 1:] - mask2_up[:, 1:]).abs()                     # (B, K-1, h, w)
    return (diff * labels.to(diff.dtype)[:, :, None, None]).mean()


def max_onehot(z: torch.Tensor) -> torch.Tensor:
    """Keep z where it equals the channel-wise (dim 1) maximum (ties all kept), 0 elsewhere."""
    return z * (z == z.max(dim=1, keepdim=True).values).to(z.dtype)


def code_consistency(code1: torch.Tensor, code2_up: torch.Tensor) -> torch.Tensor:
    """mean |keepmax(Z1) - keepmax(inv(Z2))| over (b, k, pixels); codes (B, K, h, w)."""
    if code1.shape != code2_up.shape or code1.dim() != 4:
        raise ValueError(f"code_consistency: expected two (B, K, h, w) codes of one shape, got "
                         f"{tuple(code1.shape)} and {tuple(code2_up.shape)}")
    return (max_onehot(code1) - max_onehot(code2_up)).abs().mean()
