"""Confusion-matrix metrics against hand-computed cases, and the folder evaluator / ``eval`` CLI."""
import argparse
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from slrnet.metrics import ConfusionMatrix, default_class_names

# gt / pred pairs, 6 pixels, the last one void:
#   gt   0 0 1 1 2 255
#   pred 0 1 1 1 0 2
# M[g, p]: (0,0)=1 (0,1)=1 (1,1)=2 (2,0)=1
GT = np.array([0, 0, 1, 1, 2, 255])
PRED = np.array([0, 1, 1, 1, 0, 2])


def test_hand_computed_case():
    cm = ConfusionMatrix(3).update(PRED, GT)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert cm.total == 5
    # IoU = TP / (gt + pred - TP): 1/(2+2-1), 2/(2+3-2), 0/(1+0-0)
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 0.0], rtol=0, atol=1e-15)
    assert cm.miou() == pytest.approx(1 / 3, abs=1e-15)
    prec = cm.precision()                      # class 2 never predicted: undefined
    np.testing.assert_allclose(prec[:2], [1 / 2, 2 / 3], atol=1e-15)
    assert math.isnan(prec[2])
    np.testing.assert_allclose(cm.recall(), [1 / 2, 1.0, 0.0], atol=1e-15)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5, abs=1e-15)
    assert cm.mean_accuracy() == pytest.approx(0.5, abs=1e-15)


def test_absent_class_is_nan_and_excluded_from_the_mean():
    cm = ConfusionMatrix(4).update(PRED, GT)   # class 3 appears nowhere
    iou = cm.iou()
    assert math.isnan(iou[3]) and math.isnan(cm.recall()[3]) and math.isnan(cm.precision()[3])
    assert cm.miou() == pytest.approx(1 / 3, abs=1e-15)         # not (1/3+2/3+0+0)/4
    assert cm.mean_accuracy() == pytest.approx(0.5, abs=1e-15)
    np.testing.assert_array_equal(cm.absent(), [False, False, False, True])
    s = cm.summary()
    assert s["absent_classes"] == ["class_3"]
    assert s["per_class"]["class_3"] == {"iou": None, "precision": None, "recall": None,
                                         "gt_pixels": 0, "pred_pixels": 0}
    assert s["per_class"]["class_2"]["iou"] == 0.0 and s["per_class"]["class_2"]["precision"] is None
    json.dumps(s, allow_nan=False)             # strict JSON: no NaN leaks into the summary
    table = cm.format_table()
    assert "n/a" in table and "33.33" in table and "class_3" in table.splitlines()[-1]


def test_predicted_but_absent_from_gt_counts_as_zero():
    cm = ConfusionMatrix(3).update(np.array([0, 2]), np.array([0, 0]))
    np.testing.assert_allclose(cm.iou(), [0.5, np.nan, 0.0])
    assert cm.miou() == pytest.approx(0.25)


def test_torch_inputs_any_shape_accumulate_and_merge():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, size=(2, 7, 9))
    gt[0, :2] = 255
    pred = rng.integers(0, 5, size=(2, 7, 9))
    whole = ConfusionMatrix(5).update(torch.from_numpy(pred), torch.from_numpy(gt))
    parts = ConfusionMatrix(5)
    for p, g in zip(pred, gt):
        parts.update(p, torch.from_numpy(g))
    np.testing.assert_array_equal(whole.matrix, parts.matrix)
    a, b = ConfusionMatrix(5).update(pred[0], gt[0]), ConfusionMatrix(5).update(pred[1], gt[1])
    np.testing.assert_array_equal(a.merge(b).matrix, whole.matrix)
    # the joint bincount equals a plain double loop
    ref = np.zeros((5, 5), dtype=np.int64)
    for g, p in zip(gt.ravel(), pred.ravel()):
        if g != 255:
            ref[g, p] += 1
    np.testing.assert_array_equal(whole.matrix, ref)
    assert whole.total == (gt != 255).sum()


def test_ignored_predictions_and_bad_values():
    cm = ConfusionMatrix(3).update(np.array([255, 1, 255]), np.array([0, 1, 255]))
    assert cm.total == 1 and cm.ignored_predictions == 1
    assert "not scored: 1" in cm.format_table()
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"ground-truth values \[7\]"):
        cm.update(np.zeros(2), np.array([0, 7]))
    with pytest.raises(ValueError, match=r"predicted values \[3\]"):
        cm.update(np.array([3, 0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="class_names"):
        cm.summary(["a", "b"])


def test_empty_matrix_is_nan():
    cm = ConfusionMatrix(21)
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    assert cm.summary()["miou"] is None
    assert default_class_names(21)[15] == "person"


# ----------------------------------------------------------------------------- slrnet.evaluate

def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _tiny_gt_root(root):
    gt_a = np.array([[0, 0, 1], [1, 2, 255]])
    gt_b = np.array([[2, 2, 0], [0, 0, 0]])
    _write_png(root / "SegmentationClass" / "a.png", gt_a)
    _write_png(root / "SegmentationClassAug" / "b.png", gt_b)      # found in the Aug folder
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n/JPEGImages/b.jpg /SegmentationClassAug/b.png\n")
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    return gt_a, gt_b


def test_evaluate_folder_and_cli(tmp_path, capsys):
    from slrnet.data.files import save_palette_png
    from slrnet.evaluate import add_cli_arguments, cli_run, evaluate_folder

    root, preds = tmp_path / "voc", tmp_path / "preds"
    gt_a, gt_b = _tiny_gt_root(root)
    pred_a = np.array([[0, 1, 1], [1, 2, 2]])
    pred_b = np.array([[2, 0, 0], [0, 0, 1]])
    save_palette_png(pred_a, preds / "a.png")                       # palette PNG
    _write_png(preds / "b.png", pred_b)                            # grey index PNG
    cm, info = evaluate_folder(preds, root)
    expected = ConfusionMatrix(3).update(pred_a, gt_a).update(pred_b, gt_b)
    np.testing.assert_array_equal(cm.matrix, expected.matrix)
    assert info["class_names"] == ["background", "cat", "dog"] and info["num_images"] == 2

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    out_json = tmp_path / "m.json"
    args = parser.parse_args(["--pred_dir", str(preds), "--data_root", str(root), "--data_list", "val.txt",
                              "--output_json", str(out_json)])
    assert cli_run(args) == 0
    printed = capsys.readouterr().out
    assert f"{100 * expected.miou():9.2f}" in printed and "dog" in printed
    saved = json.loads(out_json.read_text())
    assert saved["miou"] == pytest.approx(expected.miou())
    assert saved["per_class"]["cat"]["recall"] == pytest.approx(expected.recall()[1])


def test_evaluate_folder_errors(tmp_path):
    from slrnet.evaluate import evaluate_folder

    root, preds = tmp_path / "voc", tmp_path / "preds"
    _tiny_gt_root(root)
    _write_png(preds / "a.png", np.zeros((2, 3)))
    with pytest.raises(FileNotFoundError, match="1 of 2 predictions are missing"):
        evaluate_folder(preds, root)
    _write_png(preds / "b.png", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="expected equal sizes"):
        evaluate_folder(preds, root)
    _write_png(preds / "b.png", np.full((2, 3), 9))
    with pytest.raises(ValueError, match=r"b: .*predicted values \[9\]"):
        evaluate_folder(preds, root)
