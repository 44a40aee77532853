"""slrnet.losses against the authors' golden vectors (reference README sections 4-6 and 8).

float64 at atol = rtol = 1e-10 (binary outputs exact), float32 at atol = rtol = 1e-5.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slrnet import losses as L
from slrnet.ops import resize, split_views, with_background

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOL64 = dict(atol=1e-10, rtol=1e-10)
TOL32 = dict(atol=1e-5, rtol=1e-5)
PRECISIONS = [(torch.float64, TOL64), (torch.float32, TOL32)]


def load(name):
    with np.load(FIXTURES / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def t(a, dtype=None, grad=False):
    x = torch.from_numpy(np.asarray(a))
    x = x if dtype is None else x.to(dtype)
    return x.clone().requires_grad_(grad)


def class_scores(x_fg, background="constant"):
    """(scores, masks, logits) of foreground logits as SLRNet's heads make them."""
    logits = with_background(x_fg, background)
    masks = logits.softmax(dim=1)
    return L.nGWP_scores(logits, masks), masks, logits


def close(actual, expected, **tol):
    torch.testing.assert_close(actual.detach(), t(expected, actual.dtype), **tol)


# ----------------------------------------------------------------------------- classifier
@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("background,prefix", [("constant", ""), ("one_minus_max", "aux_")])
def test_class_scores_reproduce_both_heads(background, prefix, dtype, tol):
    """The network's own path: its background rule (slrnet.ops.with_background), softmax, nGWP + focal penalty."""
    z = load("classifier_pooling")
    x = t(z["x_fg"], dtype, grad=True)
    scores, masks, logits = class_scores(x, background)
    close(logits, z[prefix + "x_full"], **tol)
    close(masks, z[prefix + "masks"], **tol)
    close(scores, z[prefix + "cls"], **tol)
    (scores * t(z["R"], dtype)).sum().backward()
    close(x.grad, z[prefix + "grad_x_fg"], **tol)
    torch.testing.assert_close(L.nGWP_scores(logits, masks), scores)


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
def test_multilabel_soft_margin_and_focal_penalty(dtype, tol):
    z = load("classifier_pooling")
    scores, _, _ = class_scores(t(z["x_fg"], dtype))
    labels = t(z["labels"], dtype)
    close(L.multilabel_soft_margin(scores, labels), z["cls_loss"], **tol)
    per_image = L.multilabel_soft_margin(scores, labels, reduction="none")
    assert per_image.shape == (3,)
    torch.testing.assert_close(per_image.mean(), L.multilabel_soft_margin(scores, labels))
    v = t(z["focal_in"], dtype)
    close(L.focal_penalty(v, p=int(z["focal_p"]), c=float(z["focal_c"])), z["focal_p3_c001"], **tol)
    close(L.focal_penalty(v), z["focal_p3_c001"], **tol)                  # defaults = the classifier's
    close(L.focal_penalty(v, p=1, c=0.1), z["focal_p1_c01"], **tol)
    with pytest.raises(ValueError, match="multilabel_soft_margin"):
        L.multilabel_soft_margin(scores, labels[:, :4])
    with pytest.raises(ValueError, match="rule"):
        with_background(t(z["x_fg"]), "zeros")


# ----------------------------------------------------------------------------- pseudo labels
@pytest.mark.parametrize("source,expected,kwargs", [
    ("probs", "pseudo_gt", {}),
    ("probs", "pseudo_gt_wo_cls", dict(bg_factor=0.9, cutoff_top=0.8, cutoff_low=0.6)),
    ("probs", "pseudo_gt_top05_low03", dict(cutoff_top=0.5, cutoff_low=0.3)),
    ("probs_f32", "pseudo_gt_f32", {}),
    ("probs_f32", "pseudo_gt_wo_cls_f32", dict(bg_factor=0.9, cutoff_top=0.8, cutoff_low=0.6)),
])
def test_pseudo_labels_exact(source, expected, kwargs):
    z = load("pseudo_labels")
    probs = t(z[source])
    out = L.pseudo_labels(probs, **kwargs)
    assert out.dtype == probs.dtype and out.shape == probs.shape
    assert torch.equal(out, t(z[expected]))


def test_pseudo_labels_float32_cutoff_subtlety():
    z = load("pseudo_labels")
    probs, out = t(z["probs"]), L.pseudo_labels(t(z["probs"]))
    # class 3 of sample 0 has its threshold at the floor; 0.2000000015 is above 0.2 in float64 but
    # below float32(0.2) = effective_cutoff_low_f64, so the floor must go through float32 first
    assert 0.2 < probs[0, 3, 3, 6].item() < float(z["effective_cutoff_low_f64"][0])
    assert out[0, 3, 3, 6] == 0 and out[0, 3, 3, 4] == 1 and out[0, 3, 4, 4] == 1
    # float32 data: 0.2000000050 rounds to float32(0.2) = the cutoff, so that pixel is not selected
    assert L.pseudo_labels(t(z["probs_f32"]))[0, 3, 4, 4] == 0
    # ambiguous pixel (0, 1): claimed by background and class 1 -> all channels zero
    assert out[0, :, 0, 1].sum() == 0 and (probs[0, :2, 0, 1] > torch.tensor([0.63, 0.48], dtype=probs.dtype)).all()


def test_pseudo_label_targets():
    z = load("pseudo_labels")
    gt = t(z["pseudo_gt"])
    target = L.pseudo_label_targets(gt)
    assert target.dtype == torch.int64 and target.shape == (3, 6, 8)
    ignored = gt.sum(1) == 0
    assert bool((target[ignored] == 255).all())
    assert torch.equal(gt.argmax(1)[~ignored], target[~ignored])
    assert bool((gt.gather(1, target.clamp(max=4)[:, None])[:, 0][~ignored] == 1).all())


def test_replace_with_ground_truth():
    pseudo = torch.zeros(2, 3, 2, 2)
    pseudo[:, 1] = 1
    pixels = torch.tensor([[[0, 2], [255, 1]], [[2, 2], [2, 2]]])
    out = L.replace_with_ground_truth(pseudo, pixels, torch.tensor([True, False]), num_classes=3)
    expected0 = torch.tensor([[[1., 0], [0, 0]], [[0, 0], [0, 1]], [[0, 1], [0, 0]]])
    assert torch.equal(out[0], expected0)          # one-hot, void pixel all zero (ignored)
    assert torch.equal(out[1], pseudo[1])          # no pixel labels: pseudo label kept
    with pytest.raises(ValueError, match="pixel labels"):
        L.replace_with_ground_truth(pseudo, pixels + 3 * (pixels != 255), torch.tensor([True, True]), 3)


# ----------------------------------------------------------------------------- balanced CE
@pytest.mark.parametrize("dtype,tol", PRECISIONS)
@pytest.mark.parametrize("variant", ["with_labels", "wo_cls"])
def test_balanced_ce_loss_and_gradient(variant, dtype, tol):
    z = load("balanced_ce")
    logits = t(z["logits"], dtype, grad=True)
    labels = t(z["labels"], dtype) if variant == "with_labels" else None
    loss = L.balanced_ce(logits, t(z["pseudo_gt"], dtype), labels)
    suffix = "" if variant == "with_labels" else "_wo_cls"
    assert loss.shape == (4,)
    close(loss, z["loss" + suffix], **tol)
    loss.sum().backward()
    close(logits.grad, z["grad_logits" + suffix], **tol)
    if labels is not None:   # s1 misses a labelled class: beta = 0; s3 has equal counts only: beta = 1
        assert loss[1].item() == 0 and loss[3].item() > 0


@pytest.mark.parametrize("with_labels", [True, False])
def test_balanced_ce_with_shared_targets_is_the_same(with_labels):
    """The model computes the targets once for its three terms; the loss and its gradient are unchanged."""
    z = load("balanced_ce")
    logits, pseudo = t(z["logits"]).requires_grad_(), t(z["pseudo_gt"])
    labels = t(z["labels"]) if with_labels else None
    plain = L.balanced_ce(logits, pseudo, labels)
    (grad,) = torch.autograd.grad(plain.sum(), logits)
    shared = L.balanced_ce(logits, pseudo, labels, targets=L.seg_targets(pseudo, logits.dtype))
    (grad_shared,) = torch.autograd.grad(shared.sum(), logits)
    assert torch.equal(plain, shared) and torch.equal(grad, grad_shared)
    with pytest.raises(ValueError, match="targets"):
        L.balanced_ce(logits, pseudo, labels, targets=L.seg_targets(pseudo[:, :, :4]))


def test_replace_with_ground_truth_matches_one_hot():
    """The scatter-based one-hot equals F.one_hot with void pixels zeroed, on a batch-sized example."""
    torch.manual_seed(0)
    pseudo = (torch.rand(6, 7, 24, 20) > 0.7).float()
    pixels = torch.randint(0, 7, (6, 24, 20))
    pixels[:, 3:6] = 255
    has_mask = torch.tensor([True, False, True, True, False, False])
    one_hot = F.one_hot(pixels.clamp(max=6), 7).permute(0, 3, 1, 2).float() * (pixels != 255)[:, None].float()
    expected = torch.where(has_mask[:, None, None, None], one_hot, pseudo)
    assert torch.equal(L.replace_with_ground_truth(pseudo, pixels, has_mask, 7), expected)
    pixels[4, 0, 0] = 9                                             # out of range, but in an unlabelled image
    assert torch.equal(L.replace_with_ground_truth(pseudo, pixels, has_mask, 7), expected)


def test_balanced_ce_checks_shapes():
    z = load("balanced_ce")
    with pytest.raises(ValueError, match="labels"):
        L.balanced_ce(t(z["logits"]), t(z["pseudo_gt"]), t(z["labels"])[:, :3])
    with pytest.raises(ValueError, match="balanced_ce"):
        L.balanced_ce(t(z["logits"])[:, :4], t(z["pseudo_gt"]))


# ----------------------------------------------------------------------------- consistency
@pytest.mark.parametrize("dtype,tol", PRECISIONS)
def test_code_consistency_with_view_split(dtype, tol):
    z = load("consistency_losses")
    coding = t(z["multi_view_coding"], dtype, grad=True)
    code1, code2 = split_views(coding, [z["view1_hw"], z["view2_hw"]])
    code2_up = resize(code2, z["view1_hw"])
    close(code1, z["coding"], **tol)
    close(code2_up, z["coding2_up"], **tol)
    close(L.max_onehot(code1), z["onehot_coding"], **tol)
    close(L.max_onehot(code2_up), z["onehot_coding2_up"], **tol)
    loss = L.code_consistency(code1, code2_up)
    close(loss, z["code_reg_loss"], **tol)
    loss.backward()
    close(coding.grad, z["grad_code_multi_view_coding"], **tol)


@pytest.mark.parametrize("dtype,tol", PRECISIONS)
def test_mask_consistency(dtype, tol):
    z = load("consistency_losses")
    mask1, mask2 = t(z["mask_aug"], dtype, grad=True), t(z["mask2_small"], dtype, grad=True)
    mask2_up = resize(mask2, z["view1_hw"])
    close(mask2_up, z["mask2_up"], **tol)
    loss = L.mask_consistency(mask1, mask2_up, t(z["labels"], dtype))
    close(loss, z["reg_loss"], **tol)
    loss.backward()
    close(mask1.grad, z["grad_reg_mask_aug"], **tol)
    close(mask2.grad, z["grad_reg_mask2_small"], **tol)


def test_max_onehot_keeps_ties_and_split_views_checks_sizes():
    z = torch.tensor([[[[0.5]], [[0.5]], [[0.1]]]])             # (1, 3, 1, 1), tied maximum
    assert torch.equal(L.max_onehot(z), torch.tensor([[[[0.5]], [[0.5]], [[0.0]]]]))
    same = torch.randn(1, 2, 3, 3)
    assert resize(same, (3, 3)) is same
    with pytest.raises(ValueError, match="split_views"):
        split_views(torch.zeros(1, 2, 10), [(2, 2), (2, 2)])
