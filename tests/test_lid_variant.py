"""The L2ID network (``slrnet_lid_wide``) against the authors' ``models/slrnet_lid_wide.py``.

``fixtures/lid_wide_keys.json`` lists the authors' state_dict (201 classes): every key, shape, alias and
trainable flag; the model built here from ``configs/lid_wss_resnet38.yaml`` must have exactly that layout, so their
checkpoints load strictly. The forward's differences from the VOC network are checked on a small model.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slrnet import losses as L
from slrnet.checkpoint import alias_groups
from slrnet.config import load_config
from slrnet.models import build_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lid_wss_resnet38.yaml"


def test_lid_network_has_the_authors_state_dict_layout():
    rows = json.loads((FIXTURES / "lid_wide_keys.json").read_text())["net_state_dict"]
    cfg = load_config(CONFIG)["model"]
    net = build_model({**cfg, "pretrained": "", "class_weights": [1.0] * 200}).train()
    ours = net.state_dict(keep_vars=True)
    assert list(ours) == [r["key"] for r in rows]                    # same keys, same order
    groups = alias_groups(net)
    for r in rows:
        assert list(ours[r["key"]].shape) == r["shape"], r["key"]
        if "alias_of" in r:
            assert r["alias_of"] in groups[r["key"]], r["key"]
        if "trainable" in r:
            assert ours[r["key"]].requires_grad == r["trainable"], r["key"]


def small_lid(**over):
    cfg = {"name": "slrnet_lid_wide", "backbone": "tiny", "num_classes": 6, "decoder_channels": 32,
           "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}, "pamr_iter": 2, "pamr_dilations": [1, 2],
           "cutoff_top": 0.5, "cutoff_low": 0.1, "pos_weight": 10.0, "class_weights": [1.0, 2.0, 0.5, 1.0, 3.0],
           **over}
    torch.manual_seed(0)
    return build_model(cfg).double()


def test_lid_forward_differs_from_voc_where_the_authors_model_does():
    net = small_lid()
    assert net.fc8_up is not None and net.fc8_up[0].in_channels == 16 and net.fc8_up[0].out_channels == 32
    assert net.fc8_skip[0].out_channels == 96 and len(net.last_conv) == 5 and net.last_conv[3].p == 0.3
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64)
    labels = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]], dtype=torch.float64)
    net.train()
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    net.sg.eval()
    calls = []
    original = net.classification_loss
    net.classification_loss = lambda s, y: calls.append(s) or original(s, y)
    out = net(x, labels)
    scores, scores2, scores_aux = calls
    pos_weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0], dtype=torch.float64) * 10.0
    expected = sum(L.weighted_bce(s, labels, pos_weight, reduction="none") for s in (scores, scores2, scores_aux))
    torch.testing.assert_close(out["losses"]["cls_per_image"], expected)     # the auxiliary head weighs 1, not 0.4
    assert torch.equal(out["maps"]["pseudo_gt"], L.pseudo_labels_peak_normalised(out["maps"]["refined"], 0.5, 0.1))


def test_focal_penalty_parameters_reach_the_scores():
    logits = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    masks = logits.softmax(1)
    net = small_lid(focal_p=2, focal_c=0.05)
    torch.testing.assert_close(net.scores(logits, masks), L.nGWP_scores(logits, masks, focal_p=2, focal_c=0.05))
    assert not torch.allclose(net.scores(logits, masks), L.nGWP_scores(logits, masks))


def test_only_coco_and_lid_take_class_weights():
    with pytest.raises(ValueError, match="COCO and L2ID variants"):
        build_model({"backbone": "tiny", "num_classes": 7, "decoder_channels": 64, "class_weights": [1.0] * 6})
