"""The COCO recipe (``slrnet_coco_pseudo``) against the authors' functions (``fixtures/coco_variant.npz``).

Vectors made with the authors' ``models/slrnet_coco_pseudo.pseudo_gtmask``, their classification loss
(``F.binary_cross_entropy_with_logits`` with ``pos_weight`` = 10 x the 80 class weights of
``experiments/coco/coco_slr_wsss_pseudo.yaml``) and their ``datasets/coco.py`` ``sample_weights``, float64:
``probs`` (3, 6, 8, 10) with ``pseudo_gt`` (cut-offs 0.5 / 0.1) and ``pseudo_gt_top06_low02``; ``scores``,
``labels`` (4, 80), ``class_weights`` (80,), ``pos_weight``, ``bce_loss`` and its gradient ``bce_grad_scores``;
``image_labels`` (50, 80) (one image without labels) and their ``sample_weights`` (50,).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slrnet import losses as L
from slrnet.config import load_config
from slrnet.data.sampling import WeightedEpochSampler, class_balanced_weights
from slrnet.models import build_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "coco_wss_resnet38.yaml"


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "coco_variant.npz") as data:
        return {k: data[k] for k in data.files}


def test_peak_normalised_pseudo_labels_match_the_authors(ref):
    probs = torch.from_numpy(ref["probs"])
    before = probs.clone()
    assert np.array_equal(L.pseudo_labels_peak_normalised(probs).numpy(), ref["pseudo_gt"])
    assert np.array_equal(L.pseudo_labels_peak_normalised(probs, 0.6, 0.2).numpy(), ref["pseudo_gt_top06_low02"])
    assert torch.equal(probs, before)                      # the original divides its input in place; we do not
    assert ref["pseudo_gt"].sum((1,)).max() == 1 and (ref["pseudo_gt"].sum(1) == 0).any()   # ignored pixels exist


def test_weighted_bce_matches_the_authors(ref):
    scores = torch.from_numpy(ref["scores"]).requires_grad_()
    pos_weight = torch.from_numpy(ref["class_weights"]) * float(ref["pos_weight"])
    loss = L.weighted_bce(scores, torch.from_numpy(ref["labels"]), pos_weight)
    loss.backward()
    np.testing.assert_allclose(loss.item(), ref["bce_loss"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(scores.grad.numpy(), ref["bce_grad_scores"], rtol=1e-10, atol=1e-14)


def test_class_balanced_sample_weights_match_the_authors(ref):
    weights = class_balanced_weights(ref["image_labels"])
    np.testing.assert_allclose(weights.numpy(), ref["sample_weights"], rtol=1e-12, atol=0)
    sampler = WeightedEpochSampler(weights, num_samples=400, seed=1)
    drawn = list(sampler)
    assert len(drawn) == 400 and 7 not in drawn                   # image 7 has no label: never drawn
    sampler.set_epoch(1)
    assert list(sampler) != drawn                                  # a new draw each epoch ...
    sampler.set_epoch(0)
    assert list(sampler) == drawn                                  # ... that depends only on (seed, epoch)
    parts = [list(WeightedEpochSampler(weights, 400, seed=1, rank=r, world=2)) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(drawn)            # DDP: the ranks split one draw
    with pytest.raises(ValueError, match="image label"):
        WeightedEpochSampler(torch.zeros(5), 10)


def test_coco_config_builds_the_coco_variant(ref):
    cfg = load_config(CONFIG)
    m, t = cfg["model"], cfg["train"]
    assert (m["name"], m["num_classes"], m["cutoff_top"], m["cutoff_low"], m["pos_weight"]) == \
        ("slrnet_coco_pseudo", 81, 0.5, 0.1, 10.0)
    np.testing.assert_allclose(m["class_weights"], ref["class_weights"], rtol=0, atol=0)
    assert (t["num_samples"], t["batch_size"], t["num_epochs"], t["pretrain_epochs"]) == (40000, 6, 20, 5)
    assert cfg["test"]["scales"] == [1, 0.5, 0.75, 1.5, 2.0]
    tiny = {**m, "pretrained": "", "backbone": "tiny", "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
            "backbone_kwargs": {"width": 8}, "pamr_iter": 2, "pamr_dilations": [1, 2]}
    torch.manual_seed(0)
    net = build_model(tiny).double()
    assert net.variant == "coco" and "class_weights" in net.state_dict()    # the official checkpoints' buffer
    labels = torch.zeros(2, 80, dtype=torch.float64)
    labels[0, [0, 56]] = 1
    labels[1, 2] = 1
    out = net(torch.randn(2, 3, 48, 48, dtype=torch.float64), labels)
    assert torch.equal(out["maps"]["pseudo_gt"], L.pseudo_labels_peak_normalised(out["maps"]["refined"], 0.5, 0.1))
    scores = torch.randn(2, 80, dtype=torch.float64)
    expected = L.weighted_bce(scores, labels, torch.from_numpy(ref["class_weights"]) * 10.0, reduction="none")
    torch.testing.assert_close(net.classification_loss(scores, labels), expected, rtol=1e-6, atol=1e-9)


def test_other_variants_refuse_the_coco_keys():
    with pytest.raises(ValueError, match="only the COCO and L2ID variants"):
        build_model({"backbone": "tiny", "num_classes": 7, "decoder_channels": 64, "pos_weight": 10.0})

