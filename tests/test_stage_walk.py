"""slrnet.analysis.stage_walk: one image through every stage of a tiny SLRNet, and the readings notebook 02 prints.

The stages are the forward pass's own maps (checked against ``model(images, labels)["maps"]`` in eval mode), the
prediction is the Predictor's and the CRF'd one ``crf_argmax`` of it; the readings are checked against numbers
worked out by hand on small constructed maps, snapshot histories and val records."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slrnet.analysis import stage_walk as SW
from slrnet.infer import Predictor, TestConfig
from slrnet.losses import pseudo_label_targets
from slrnet.models import build_model
from slrnet.ops import resize

TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}, "pamr_iter": 2, "pamr_dilations": [1, 2]}
NAMES = ["background", "a", "b", "c", "d"]
H, W = 40, 32


@pytest.fixture(scope="module")
def image():
    return torch.randn(3, H, W, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def labels():
    return torch.tensor([1.0, 0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(TINY)


@pytest.fixture(scope="module")
def walk(model, image, labels):
    mask = torch.randint(0, 5, (H, W), generator=torch.Generator().manual_seed(1))
    return SW.stage_walk(model, image, labels, mask=mask)


def test_stages_are_the_forward_pass_maps(model, image, labels, walk):
    model.eval()
    with torch.no_grad():
        maps = model(image[None], labels[None])["maps"]
    torch.testing.assert_close(walk["cam"], maps["cam"][0])
    torch.testing.assert_close(walk["refined"], maps["refined"][0])
    assert torch.equal(walk["pseudo_label"], pseudo_label_targets(maps["pseudo_gt"])[0])
    torch.testing.assert_close(walk["mask_view1"], maps["masks"][0])
    torch.testing.assert_close(walk["codes_view1"], resize(maps["codes"], (H, W))[0])
    torch.testing.assert_close(walk["codes_view2"], resize(maps["codes2"], (H, W))[0])
    for key in SW.PROBABILITY_STAGES:
        assert walk[key].shape == (5, H, W), key
    # the average drops the classes the image lacks (b, d = channels 2, 4); the aux CAM keeps every class
    assert walk["cam"][[2, 4]].abs().max() == 0 and walk["refined"][[2, 4]].abs().max() == 0
    torch.testing.assert_close(walk["aux_cam"].sum(0), torch.ones(H, W))
    torch.testing.assert_close(walk["cam"][[0, 1, 3]],
                               ((walk["mask_view1"] + walk["mask_view2"]) / 2)[[0, 1, 3]])


def test_prediction_and_crf_are_the_predictors(model, image, walk):
    from slrnet.crf import crf_argmax
    from slrnet.data.transforms import denormalize

    test = TestConfig(scales=(1.0,), flip=False)
    expected = Predictor(model, test, device="cpu", optimize=False).predict(image)
    assert torch.equal(walk["prediction"], expected)
    crf = crf_argmax(denormalize(image), walk["probs"].numpy(), test.crf_iters)
    np.testing.assert_array_equal(walk["prediction_crf"].numpy(), crf)
    assert walk["prediction"].shape == (H, W) and walk["image"].shape == (3, H, W)


def test_model_mode_is_restored_and_inputs_checked(model, image, labels):
    model.train()
    out = SW.stage_walk(model, image, labels, apply_crf=False)
    assert model.training and out["prediction_crf"] is None and out["mask"] is None
    model.eval()
    SW.stage_walk(model, image[None], None, apply_crf=False)
    assert not model.training
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        SW.stage_walk(model, image[:2], labels)
    with pytest.raises(ValueError, match="foreground classes"):
        SW.stage_walk(model, image, torch.ones(6))
    with pytest.raises(TypeError, match="float tensor"):
        SW.stage_walk(model, image.long(), labels)


def test_baseline_without_cvlr_has_no_aux_views_or_codes(image, labels):
    torch.manual_seed(0)
    base = build_model({**TINY, "use_cvlr": False})
    out = SW.stage_walk(base, image, labels, apply_crf=False)
    for key in ("aux_cam", "mask_view2", "codes_view1", "codes_view2"):
        assert out[key] is None and SW.label_map(out, key) is None and SW.confidence(out, key) is None
    kept = out["mask_view1"].clone()
    kept[[2, 4]] = 0
    torch.testing.assert_close(out["cam"], kept)                 # the one view's mask, absent classes dropped
    text = SW.stage_reading(out, NAMES)
    assert "Auxiliary" not in text and "Codes" not in text and "Views" not in text and "PAMR changed" in text


def _walk(k=3) -> dict:
    """A hand-made 2 x 4 walk: every number of its reading is worked out below."""
    def probs(lab, top):
        lab = torch.as_tensor(lab)
        p = torch.full((k, *lab.shape), (1 - top) / (k - 1))
        p.scatter_(0, lab[None], top)
        return p
    return {"num_classes": k, "labels": torch.tensor([1.0, 0.0]), "image": torch.zeros(3, 2, 4),
            "aux_cam": probs([[0, 0, 1, 2], [0, 0, 1, 1]], 0.5),           # class 2 (absent) on 1 pixel of 8
            "mask_view1": probs([[0, 0, 1, 1], [0, 0, 1, 1]], 0.6),
            "mask_view2": probs([[0, 0, 0, 1], [0, 0, 1, 1]], 0.6),        # 7 of 8 agree
            "cam": probs([[0, 0, 0, 1], [0, 0, 1, 1]], 0.6),
            "refined": probs([[0, 0, 1, 1], [0, 0, 1, 1]], 0.8),           # 1 of 8 changed
            "pseudo_label": torch.tensor([[0, 0, 255, 1], [0, 0, 1, 1]]),
            "codes_view1": probs([[0, 0, 1, 1], [0, 1, 1, 1]], 0.5),
            "codes_view2": probs([[0, 0, 1, 1], [0, 0, 1, 1]], 0.5),        # 7 of 8 agree
            "prediction": torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1]]),
            "prediction_crf": torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]]),   # 1 of 8 changed
            "kept": [1], "probs": None,
            "mask": torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])}


def test_stage_reading_words_the_numbers():
    text = SW.stage_reading(_walk(), ["bg", "x", "y"], name="crop 1")
    lines = text.split("\n")
    assert lines[0] == "crop 1: image labels x."
    assert "argmax foreground on 50.0 %" in lines[1] and "mean top probability 0.50" in lines[1]
    assert "also names y (12.5 %), absent from the image" in lines[1]
    assert "agree on 87.5 % of the pixels" in lines[2]
    assert "PAMR changed the argmax of 12.5 %" in lines[3] and "0.60 -> 0.80" in lines[3]
    assert lines[4] == "Pseudo label: bg 50.0 %, x 37.5 %, ignored 12.5 %."
    # codes: views agree on 7 / 8; view-1 winning atom = pseudo label on 6 of the 7 labelled pixels
    assert "agree on 87.5 %" in lines[5] and "on 85.7 % of its labelled pixels" in lines[5]
    assert "mean winning code 0.50, uniform 0.33)." in lines[5]                 # not flat: no remark
    flat = _walk()
    flat["codes_view1"] = torch.full((3, 2, 4), 1 / 3)
    flat["codes_view1"][1, 0, 0] += 0.01
    assert "the codes are nearly uniform" in SW.stage_reading(flat)
    assert SW._pct(0.0001) == "under 0.1 %" and SW._pct(0.0) == "0.0 %"
    assert "kept x" in lines[6] and "pseudo label on 85.7 %" in lines[6] and "the CRF changed 12.5 %" in lines[6]
    # IoU against the ground truth: the pseudo label is exact where labelled (its ignored pixel is not scored)
    assert "pseudo label 1.000" in lines[7] and "with the CRF 1.000" in lines[7]
    assert "prediction 0.775" in lines[7]       # background 4 / 5, x 3 / 4: mean 0.775
    w = _walk()
    w["aux_cam"][2] = 0                           # no absent class named any more
    assert "names no class absent" in SW.stage_reading(w)


def test_seg_loss_start_counts_epochs_from_the_config():
    cfg = {"train": {"num_epochs": 12, "pretrain_epochs": 2}}
    assert SW.seg_loss_start(cfg) == {"num_epochs": 12, "pretrain_epochs": 2, "epochs_without": 3, "first_epoch": 4}
    assert "starts at epoch 4" in SW.seg_loss_reading(cfg) and "epochs 1-3 of 12" in SW.seg_loss_reading(cfg)
    assert SW.seg_loss_start({"train": {"num_epochs": 2, "pretrain_epochs": 0}})["first_epoch"] == 2
    assert "so epoch 1 of 2 trains without it and it starts at epoch 2" in SW.seg_loss_reading(
        {"train": {"num_epochs": 2, "pretrain_epochs": 0}})
    never = {"train": {"num_epochs": 3, "pretrain_epochs": 2}}
    assert SW.seg_loss_start(never)["first_epoch"] is None and "no epoch" in SW.seg_loss_reading(never)


def _history():
    first = torch.tensor([[[0, 255, 1, 1], [0, 0, 255, 1]]], dtype=torch.uint8)       # 1 crop, 8 pixels
    middle = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]], dtype=torch.uint8)
    last = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 2]]], dtype=torch.uint8)
    return [(1, first), (3, {"pseudo": middle, "mask": middle}), (5, last)]


def test_pseudo_label_change_and_its_reading():
    c = SW.pseudo_label_change(_history())
    assert c["epochs"] == [2, 4, 6] and c["ignored"] == [0.25, 0.0, 0.0]
    assert c["foreground"] == [0.375, 0.5, 0.5]
    assert c["changed"] == [0.375] and c["changed_all"] == 0.375 and c["changed_step"] == [0.25, 0.125]
    text = SW.snapshot_reading(_history(), {"train": {"num_epochs": 6, "pretrain_epochs": 2}})
    assert "epoch 2 25.0 %, epoch 4 0.0 %, epoch 6 0.0 %" in text
    assert "Between epoch 2 and epoch 6 the pseudo label changed on 37.5 % of the pixels" in text
    assert "from epoch 2 to epoch 4 (25.0 % of the pixels); the last step changed 12.5 %" in text
    assert "fewer ignored pixels (25.0 % -> 0.0 %) and more foreground (37.5 % -> 50.0 %)" in text
    assert "starts at epoch 4: the snapshot of epoch 2 shows the pseudo labels before" in text
    late = SW.snapshot_reading(_history(), {"train": {"num_epochs": 6, "pretrain_epochs": 0}})
    assert "every snapshot (the first at epoch 2) comes after it started" in late
    assert "Only one snapshot (epoch 2)" in SW.snapshot_reading(_history()[:1])
    with pytest.raises(ValueError, match="empty"):
        SW.pseudo_label_change([])


def test_val_failures_and_their_reading():
    gt = np.zeros((4, 4), np.int64)
    gt[:2, :2] = 1
    missed = np.zeros_like(gt)                         # the object predicted as background
    right = gt.copy()
    leak = gt.copy()
    leak[3, 3] = 2                                     # a class the image lacks, on background
    records = [{"name": "m", "pred": missed, "mask": gt, "num_classes": 3},
               {"name": "r", "pred": right, "mask": gt, "num_classes": 3},
               {"name": "l", "pred": leak, "mask": gt, "num_classes": 3},
               {"name": "unscored", "pred": right, "mask": None, "num_classes": 3}]
    failures = SW.val_failures(records, ["bg", "x", "y"])
    assert [f["name"] for f in failures] == ["m", "r", "l"]
    assert [f["mode"] for f in failures] == ["missed object", "no error", "background leak"]
    assert failures[1]["iou"] == 1.0 and failures[0]["error_share"] == 0.25
    assert SW.failure_counts(failures) == {"background leak": 1, "missed object": 1, "no error": 1}
    text = SW.val_failure_reading(failures, shown=2)
    lines = text.split("\n")
    assert lines[0].startswith("m (IoU 0.375): missed object - x not found")
    assert "25.0 % of its pixels wrong" in lines[0]
    assert lines[1] == "r (IoU 1.000): every scored pixel right."
    assert lines[2] == "All 3 val images: background leak 1, missed object 1, no error 1."
    assert lines[3].startswith("Lowest per-image IoU: m 0.375 (missed object")
    assert SW.val_failures(records[3:]) == [] and "nothing to score" in SW.val_failure_reading([])


def test_per_class_reading():
    text = SW.per_class_reading({"background": 0.9, "a": 0.5, "b": None, "c": 0.7})
    assert "highest background 0.900, c 0.700; lowest a 0.500, c 0.700 (a spread of 0.400)" in text
    assert "confusion matrix" in text and SW.per_class_reading({"a": None}) == "No class was scored."


def test_snapshot_trend_words_follow_relative_changes():
    assert SW._trend(0.008, 0.018, ("fewer", "more", "same")) == "more"           # doubled, one point
    assert SW._trend(0.50, 0.52, ("fewer", "more", "same")) == "same"             # two points of a half
    assert SW._trend(0.002, 0.0, ("fewer", "more", "same")) == "same"             # under half a point
    assert SW._trend(0.30, 0.10, ("fewer", "more", "same")) == "fewer"
    two = _history()[::2]                                                          # epochs 2 and 6 only
    text = SW.snapshot_reading(two)
    assert "largest change between consecutive" not in text and "changed on 37.5 %" in text


def test_factor_history_reading_names_a_collapse():
    from slrnet.analysis import stage_walk as W

    def epoch(i, cos, rank, top):
        return {"epoch": i, "train_factor_atom_cos": cos, "train_factor_rank": rank, "train_factor_code_top": top}

    collapsed = W.factor_history_reading([epoch(0, 0.995, 1.05, 0.165), {"epoch": 1}, epoch(2, 1.0, 1.0, 0.144)])
    assert collapsed.startswith("Low-rank module, epoch 1 -> 3: mean cosine between atoms 0.995 -> 1.000, effective "
                                "rank of the reconstruction 1.05 -> 1.00, winning code 0.165 -> 0.144.")
    assert "The dictionary has collapsed" in collapsed
    assert "collapsed" not in W.factor_history_reading([epoch(0, 0.9, 1.2, 0.2), epoch(1, 0.75, 1.8, 0.26)])
    assert W.factor_history_reading([{"epoch": 0, "train_loss": 1.0}]).startswith("no factor diagnostics")
