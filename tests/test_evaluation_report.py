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
        "| a | b |\n|---|---|\n| 1.234 | n/a |\n| x\\|y | 2 |"
    assert R.markdown_table([{"a": 1, "b": 2}], columns=["b"]) == "| b |\n|---|\n| 2 |"
    assert R.markdown_table([{"a": 0.5, "b": 0.0681}]) == "| a | b |\n|---|---|\n| 0.5 | 0.068 |"
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


# ----------------------------------------------------------------------------- failure modes, errors, readings

NAMES4 = ["background", "a", "b", "c"]


@pytest.fixture
def two_objects():
    gt = np.zeros((20, 20), int)
    gt[2:8, 2:8] = 1
    gt[8:14, 8:14] = 2                              # touches a at a corner
    return gt


def test_failure_mode_names_each_failure(two_objects):
    gt = two_objects
    mode = lambda pred, g=gt: R.failure_mode(pred, g, 4, NAMES4)   # noqa: E731
    merged = np.where(gt == 2, 1, gt)
    f = mode(merged)
    assert f["mode"] == "merged overlapping objects" and f["detail"] == "b predicted as a, which it touches"
    assert f["shares"]["object -> another object of the image"] == 1.0 and f["error_share"] == pytest.approx(36 / 400)
    assert f["gt_classes"] == ["a", "b"] and f["pred_classes"] == ["a"]
    apart = gt.copy()
    apart[8:14, 8:14] = 0
    apart[14:20, 14:20] = 2                          # b far from a: taking it for a is a wrong class, not a merge
    assert mode(np.where(apart == 2, 1, apart), apart)["mode"] == "wrong class"
    assert mode(np.where(gt == 2, 0, gt))["mode"] == "missed object"
    assert mode(np.where(gt == 2, 3, gt))["detail"] == "b predicted as c"
    leak = gt.copy()
    leak[15:19, 15:19] = 3
    assert mode(leak)["mode"] == "background leak" and mode(leak)["detail"] == "c predicted where there is none"
    grown = gt.copy()
    grown[1:9, 1:9] = 1
    assert mode(grown)["mode"] == "background leak"
    shrunk = gt.copy()
    shrunk[2:4, 2:8] = 0
    assert mode(shrunk)["mode"] == "masks too small" and "part of a" in mode(shrunk)["detail"]
    assert mode(gt)["mode"] == "no error" and mode(gt)["error_share"] == 0.0
    big = np.kron(gt, np.ones((8, 8), dtype=gt.dtype))              # the same scene, 64 times the pixels
    nearly = big.copy()
    ys, xs = np.nonzero(big == 1)
    nearly[ys[:3], xs[:3]] = 0                                       # three object pixels as background
    minor = R.failure_mode(nearly, big, 4)
    assert minor["mode"] == "minor errors" and minor["error_share"] < R.MINOR_ERROR_SHARE
    assert minor["detail"].startswith("the classes right, ")
    void = gt.copy()
    void[8:14, 8:14] = 255                           # void is not scored: no error
    assert R.failure_mode(np.zeros_like(gt) + gt * (gt < 255), void, 4)["mode"] == "no error"
    with pytest.raises(ValueError, match="shape"):
        R.failure_mode(gt[:3], gt, 4)


def test_error_breakdown_and_border_band(two_objects):
    e = R.error_breakdown(np.array([[10, 2, 1], [3, 8, 1], [0, 4, 9]]), ["bg", "a", "b"])
    assert e["error_share"] == pytest.approx(11 / 38)
    assert (e["object -> background"], e["background -> object"], e["object -> object"]) == \
        pytest.approx((3 / 11, 3 / 11, 5 / 11))
    assert e["largest"] == {"ground_truth": "b", "prediction": "a", "share_of_class": pytest.approx(4 / 13),
                            "share_of_errors": pytest.approx(4 / 11)}
    assert R.error_breakdown(np.eye(3) * 5)["largest"] is None
    band = R.border_band(two_objects, 0)
    assert band[1, 2] and band[2, 2] and not band[0, 2] and not band[4, 4]       # both sides of a label change
    wide = R.border_band(two_objects, 2)
    assert wide[4, 4] and not wide[19, 0] and (wide >= band).all()
    assert not R.border_band(np.zeros((5, 5), int), 3).any()


def test_result_counts_regions_crf_changes_and_failures(result, smoke_setup):
    _, _, dataset, _ = smoke_setup
    for key in result.keys():
        cm = result.confusion[key]
        regions = result.regions[key]
        assert regions["border"][1] + regions["interior"][1] == cm.total
        assert regions["border"][0] + regions["interior"][0] == int(np.trace(cm.matrix))
    for p in result.passes:
        ch = result.crf_changes[p.key]
        net = sum(ch[r]["fixed"] - ch[r]["broken"] for r in ("border", "interior"))
        changed = sum(int((np.asarray(a) != np.asarray(b))[np.asarray(dataset[i]["mask"]) != 255].sum())
                      for i, (a, b) in enumerate(zip(result.predictions[p.key], result.predictions[p.key + "_crf"])))
        assert changed == sum(ch[r]["changed"] for r in ("border", "interior"))
        assert net == int(np.trace(result.confusion[p.key + "_crf"].matrix) - np.trace(result.confusion[p.key].matrix))
    assert len(result.failure_modes) == result.num_images
    for i in range(result.num_images):
        f = R.failure_mode(result.predictions[result.final_key][i], dataset[i]["mask"], dataset.num_classes,
                           dataset.class_names)
        assert f == result.failure_modes[i]
    for e in result.examples["worst"]:
        assert e["failure"] is result.failure_modes[e["index"]]
    metrics = result.metrics()
    import json
    json.dumps(metrics)                                            # JSON-ready
    assert sum(metrics["failure_modes"].values()) == result.num_images
    accuracy = result.confusion["multi_scale"].pixel_accuracy()
    assert metrics["errors"]["multi_scale"]["error_share"] == pytest.approx(1 - accuracy)


def test_median_and_crf_change_examples(result):
    scores = np.asarray(result.image_ious[result.final_key])
    median = R.median_examples(result, 3, exclude=[])
    assert len(median) == 3 and [e["iou"] for e in median] == sorted(e["iou"] for e in median)
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))       # 8 images, median between 3 and 4
    assert [e["index"] for e in median] == order[2:5]                       # 3, 4 (0.5 away), then 2 before 5
    assert [e["index"] for e in R.median_examples(result, 2, exclude=[])] == order[3:5]
    assert len(R.median_examples(result, 100, exclude=[])) == 8
    default = R.median_examples(result, 3, exclude=[order[3], order[4]])   # the nearest free places: 2, 5, 1
    assert [e["index"] for e in default] == [order[1], order[2], order[5]]
    worst = {e["index"] for e in result.examples["worst"]}
    assert not worst & {e["index"] for e in R.median_examples(result, 3)}
    assert [e["failure"] for e in default] == [result.failure_modes[e["index"]] for e in default]
    # most images perfect: the median of the others, never a perfect image
    import copy
    mostly_perfect = copy.copy(result)
    ious = np.array(scores, dtype=np.float64)
    ious[order[:5]] = 1.0                                                   # 5 of 8 perfect
    mostly_perfect.image_ious = {**result.image_ious, result.final_key: ious}
    assert R.perfect_share(mostly_perfect) == 5 / 8 and R.perfect_share(result) == float((scores >= 1).mean())
    assert all(e["iou"] == 1.0 for e in R.median_examples(mostly_perfect, 2, exclude=[]))
    typical = R.median_examples(mostly_perfect, 2, exclude=[], skip_perfect=True)
    assert [e["index"] for e in typical] == sorted(order[5:], key=lambda i: (ious[i], i))[:2]
    assert all(e["iou"] < 1.0 for e in typical)
    change = R.crf_change_examples(result, 4)
    delta = np.asarray(result.image_ious["multi_scale_crf"]) - np.asarray(result.image_ious["multi_scale"])
    assert [e["delta"] for e in change] == sorted((e["delta"] for e in change), reverse=True)
    for e in change:
        assert e["delta"] == pytest.approx(delta[e["index"]])
        assert e["iou_after"] - e["iou_before"] == pytest.approx(e["delta"])
    gains = sorted(delta[delta > 0], reverse=True)[:2]
    assert [e["delta"] for e in change if e["delta"] > 0][:len(gains)] == pytest.approx(list(gains))


def test_predict_examples_gives_the_evaluated_maps(result, smoke_setup):
    _, cfg, dataset, model = smoke_setup
    maps = R.predict_examples(model, dataset, TestConfig.from_config(cfg, apply_crf=True), [5, 1, 5], device="cpu")
    assert list(maps) == [5, 1]
    for i, m in maps.items():
        assert m["name"] == dataset.names[i]
        np.testing.assert_array_equal(m["pred"], result.predictions["multi_scale"][i])
        np.testing.assert_array_equal(m["pred_crf"], result.predictions["multi_scale_crf"][i])
    with pytest.raises(ValueError, match="use_cls_label"):
        R.predict_examples(model, dataset, TestConfig(use_cls_label=True), [0])


def test_readings_word_this_results_numbers(result):
    text = R.crf_reading(result)
    for p in result.passes:
        a, b = result.miou(p.key), result.miou(p.key + "_crf")
        assert f"{p.label} {a:.3f} -> {b:.3f} ({R._pts(b - a)})" in text
    d = np.asarray(result.image_ious["multi_scale_crf"]) - np.asarray(result.image_ious["multi_scale"])
    assert f"{int((d > 1e-9).sum())} of {len(d)} improve" in text
    errors = R.error_reading(result)
    e = R.error_breakdown(result.confusion[result.final_key].matrix, result.class_names)
    assert f"{100 * e['error_share']:.1f} % of the scored pixels are wrong" in errors
    assert f"{100 * e['object -> object']:.1f} % object -> another object class" in errors
    assert "Without the CRF" in errors
    worst = R.failure_reading(result, result.examples["worst"])
    for entry in result.examples["worst"]:
        assert f"{entry['name']} (IoU {entry['iou']:.3f}): {entry['failure']['mode']}" in worst
    assert f"All {result.num_images} scored images" in worst
    assert "not applied" in R.crf_reading(R.EvaluationResult(**{**result.__dict__, "apply_crf": False}))


def test_crf_without_iterations_changes_nothing(smoke_setup):
    """Notebook 05's first exercise: crf_iters = 0 returns the network's own probabilities, so its argmax."""
    _, cfg, dataset, model = smoke_setup
    res = R.evaluate_model(model, dataset, TestConfig.from_config(cfg, apply_crf=True, crf_iters=0), device="cpu",
                           max_images=3, num_workers=1)
    for p in res.passes:
        np.testing.assert_array_equal(res.confusion[p.key].matrix, res.confusion[p.key + "_crf"].matrix)
        assert all(res.crf_changes[p.key][r]["changed"] == 0 for r in ("border", "interior"))
    text = R.crf_reading(res)
    assert "(+0.0 points)" in text and "0 of 3 improve, 0 get worse, 3 are unchanged" in text
    assert "the CRF changed no scored pixel" in text and res.metrics()["settings"]["crf_iters"] == 0


def test_error_kind_changes_split_the_crf_gain():
    before = np.array([[90, 4, 1], [3, 40, 6], [0, 2, 30]])     # background row 0; 8 object->object, 5 bg->obj, 3 obj->bg
    after = np.array([[92, 2, 1], [1, 46, 2], [0, 0, 32]])      # 2 object->object, 3 bg->obj, 1 obj->bg
    assert R.error_kind_changes(before, after) == {"object as another object": 6, "background as object": 2,
                                                   "object as background": 2}
    assert R.error_kind_changes(after, before)["object as another object"] == -6
