"""slrnet.analysis.evaluation_report: per-image IoU, best / worst selection, the four-setting evaluation, tables.

Hand-computed IoU cases; ExtremeExamples ordering and ties; evaluate_model on a random-weight tiny
SLRNet and the smoke-profile shapes dataset (12 val images of 64 px, generated in a temp folder),
checked against a direct single-scale computation; markdown tables. The model notebook 05 loads or
trains is tested in tests/test_notebook_model.py. Everything runs in a few seconds on 2 CPU cores.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from slrnet.analysis import evaluation_report as R
from slrnet.infer import TestConfig
from slrnet.analysis.trained_model import evaluation_set

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "shapes_quick.yaml"



# ----------------------------------------------------------------------------- image_iou

def test_image_iou_hand_computed():
    pred = np.array([[0, 1], [1, 1]])
    gt = np.array([[0, 1], [0, 255]])                         # one void pixel, not scored
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 1 -> 1/2; class 2 absent from both -> not in the mean
    assert R.image_iou(pred, gt, num_classes=3) == pytest.approx(0.5)
    assert R.image_iou(gt, gt, num_classes=3) == 1.0
    # a class in the ground truth that is never predicted counts with IoU 0
    assert R.image_iou(np.zeros(4, int), np.array([1, 1, 0, 0]), num_classes=2) == pytest.approx((0.5 + 0) / 2)
    # 3 background pixels right, one circle pixel predicted as square: IoU bg 1, circle 0, square 0
    assert R.image_iou(np.array([0, 0, 0, 2]), np.array([0, 0, 0, 1]), num_classes=3) == pytest.approx(1 / 3)
    assert math.isnan(R.image_iou(np.zeros((2, 2), int), np.full((2, 2), 255), num_classes=3))


# ----------------------------------------------------------------------------- ExtremeExamples

def test_extreme_examples_best_worst_ties_and_nan():
    ex = R.ExtremeExamples(2)
    for index, score in enumerate([0.5, 0.9, 0.1, 0.9, float("nan"), 0.3, 0.1, 0.7]):
        ex.add(index, score, payload=f"p{index}")
    assert [e["index"] for e in ex.best()] == [1, 3]           # 0.9, 0.9: the earlier index ranks higher
    assert [e["index"] for e in ex.worst()] == [6, 2]          # 0.1, 0.1: ... so the later one is "worse"
    assert [e["payload"] for e in ex.best()] == ["p1", "p3"]

    ex = R.ExtremeExamples(3)
    for index, score in enumerate([0.2, 0.8, 0.5]):
        ex.add(index, score)
    assert [e["index"] for e in ex.best()] == [1, 2, 0] and [e["index"] for e in ex.worst()] == [0, 2, 1]

    # one total order: with every score tied, best and worst split the items instead of sharing them
    ex = R.ExtremeExamples(2)
    for index in range(4):
        ex.add(index, 0.5)
    assert [e["index"] for e in ex.best()] == [0, 1] and [e["index"] for e in ex.worst()] == [3, 2]

    # payloads are never compared, even when an index comes twice with the same score
    ex = R.ExtremeExamples(1)
    ex.add(0, 0.5, np.zeros(3))
    ex.add(0, 0.5, np.ones(3))
    assert len(ex.best()) == 1 and len(ex.worst()) == 1
    assert R.ExtremeExamples(0).best() == []
    with pytest.raises(ValueError, match="k must be >= 0"):
        R.ExtremeExamples(-1)


# ----------------------------------------------------------------------------- evaluate_model

@pytest.fixture(scope="module")
def smoke_setup(tmp_path_factory):
    """The smoke-profile config (dataset generated under a temp folder), its val split and a random model."""
    from slrnet.models import build_model
    from slrnet.profiles import training_config

    out = tmp_path_factory.mktemp("nb05")
    cfg = training_config(CONFIG, "smoke", out)
    dataset = evaluation_set(cfg, split="val", num_classes=cfg["model"]["num_classes"])
    torch.manual_seed(0)
    model = build_model({**cfg["model"], "pretrained": ""}).eval()
    return out, cfg, dataset, model


@pytest.fixture(scope="module")
def result(smoke_setup):
    _, cfg, dataset, model = smoke_setup
    return R.evaluate_model(model, dataset, TestConfig.from_config(cfg, apply_crf=True), num_workers=1,
                            device="cpu", num_examples=3, max_images=8, keep_predictions=True)


def test_evaluate_model_metrics(result, smoke_setup):
    _, _, dataset, _ = smoke_setup
    metrics = result.metrics()
    for key in ("val_miou", "val_miou_crf", "val_miou_single_scale", "val_miou_single_scale_crf"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["num_images"] == 8 and result.names == dataset.names[:8]
    assert metrics["settings"]["use_cls_label"] is False and metrics["settings"]["apply_crf"] is True
    assert set(metrics["timing"]) >= {"single_scale_seconds", "multi_scale_seconds", "inference_seconds"}
    # every setting scores exactly the non-void ground-truth pixels of the 8 images
    valid = sum(int((np.asarray(dataset[i]["mask"]) != 255).sum()) for i in range(8))
    assert all(result.confusion[k].total == valid for k in result.keys())
    assert result.keys() == ["single_scale", "single_scale_crf", "multi_scale", "multi_scale_crf"]
    assert set(metrics["per_class_iou"]) == {"val_miou", "val_miou_crf"}


def test_single_scale_setting_matches_a_direct_computation(result, smoke_setup):
    from slrnet.infer import filter_classes
    from slrnet.metrics import ConfusionMatrix

    _, _, dataset, model = smoke_setup
    cm = ConfusionMatrix(dataset.num_classes)
    ious = []
    with torch.inference_mode():
        for i in range(8):
            sample = dataset[i]
            out = model.predict(sample["image"][None])
            pred = filter_classes(out["masks"][0].float(), out["scores"][0].float(), fp_cut=0.3, top_k=6,
                                  bg_pow=3).argmax(0)
            cm.update(pred, sample["mask"])
            ious.append(R.image_iou(pred, sample["mask"], dataset.num_classes))
            assert np.array_equal(result.predictions["single_scale"][i], pred.numpy())
    assert result.miou("single_scale") == pytest.approx(cm.miou(), abs=1e-12)
    np.testing.assert_allclose(result.image_ious["single_scale"], ious, rtol=0, atol=1e-12)


def test_best_and_worst_examples(result, smoke_setup):
    _, _, dataset, _ = smoke_setup
    ex = result.examples
    assert ex["setting"] == result.final_key == "multi_scale_crf"
    assert len(ex["best"]) == len(ex["worst"]) == 3
    best, worst = [e["iou"] for e in ex["best"]], [e["iou"] for e in ex["worst"]]
    scores = np.array(result.image_ious["multi_scale_crf"])
    assert best == sorted(best, reverse=True) and worst == sorted(worst)
    assert best[0] == np.nanmax(scores) and worst[0] == np.nanmin(scores)
    assert not {e["index"] for e in ex["best"]} & {e["index"] for e in ex["worst"]}
    for e in ex["best"] + ex["worst"]:
        assert e["name"] == dataset.names[e["index"]]
        assert np.array_equal(e["pred"], result.predictions["multi_scale_crf"][e["index"]])

    rows = R.example_rows(dataset, ex["best"])
    image, gt, pred, caption = rows[0]
    assert image.dtype == np.uint8 and image.shape == (*gt.shape, 3) and pred.shape == gt.shape
    assert caption.startswith(ex["best"][0]["name"]) and f"{best[0]:.3f}" in caption


def test_figures_from_a_result(result, smoke_setup):
    from slrnet.viz import evaluation as viz_eval

    _, _, dataset, _ = smoke_setup
    fig = viz_eval.plot_best_worst(R.example_rows(dataset, result.examples["best"]),
                                   R.example_rows(dataset, result.examples["worst"][:2]), class_names=dataset.class_names)
    assert len(fig.axes) == 3 * 6
    fig = viz_eval.plot_setting_comparison(result.setting_mious())
    heights = sorted(round(b.get_height(), 6) for b in fig.axes[0].patches)
    assert heights == sorted(round(v, 6) for v in (result.miou(k) for k in result.keys()))
    viz_eval.prediction_explorer(dataset, {result.label(k): result.predictions[k] for k in result.keys()},
                                 result.names, {result.label(k): result.image_ious[k] for k in result.keys()})


def test_rows_and_markdown_table(result):
    rows = result.rows()
    assert [r["setting"] for r in rows] == ["single scale", "single scale + CRF", "multi-scale + flip",
                                            "multi-scale + flip + CRF"]
    assert rows[2]["scales"] == "1, 0.75, 1.25" and rows[2]["flip"] == "yes" and rows[0]["flip"] == "no"
    assert rows[3]["mIoU (%)"] == round(100 * result.miou("multi_scale_crf"), 2)
    assert "use_cls_label off" in result.class_filter_note()
    table = R.markdown_table(rows)
    assert table.count("\n") == 1 + len(rows) and "| multi-scale + flip + CRF | val_miou_crf |" in table

    assert R.markdown_table([{"a": 1.234, "b": None}, {"a": "x|y", "b": 2}]) == \
        "| a | b |\n|---|---|\n| 1.23 | n/a |\n| x\\|y | 2 |"
    assert R.markdown_table([{"a": 1, "b": 2}], columns=["b"]) == "| b |\n|---|\n| 2 |"
    with pytest.raises(ValueError, match="no rows"):
        R.markdown_table([])


def test_paper_rows_are_labelled_as_reported():
    rows = R.paper_rows()
    assert len(rows) == len(R.PAPER_VOC_RESULTS)
    column = next(iter(rows[0]))
    assert "reported in the paper" in column and "not measured here" in column
    assert rows[0]["VOC val mIoU (%)"] == 67.2 and rows[0]["backbone"] == "WideResNet-38"


def test_evaluate_model_without_crf(smoke_setup):
    _, cfg, dataset, model = smoke_setup
    res = R.evaluate_model(model, dataset, TestConfig.from_config(cfg, scales=[1.0, 0.5], apply_crf=False),
                           device="cpu", max_images=2, num_examples=4)
    metrics = res.metrics()
    assert metrics["val_miou_crf"] is None and 0 <= metrics["val_miou"] <= 1
    assert res.final_key == "multi_scale" and len(res.rows()) == 2
    assert len(res.examples["best"]) == 1                     # at most half the images each
