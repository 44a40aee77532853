"""slrnet.learning_check: the label prior's loss, the background-only mIoU, the three symptoms, and a run that
does not learn being reported as such by the trainer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slrnet.config import validate
from slrnet.data import ensure_default_dataset
from slrnet.learning_check import background_only_miou, check_learning, label_prior_loss
from slrnet.train import Trainer


def test_label_prior_loss_is_the_mean_binary_entropy():
    labels = np.array([[1, 0], [1, 0], [0, 0], [1, 1]])          # p = (0.75, 0.25)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert label_prior_loss(labels) == pytest.approx(h)
    assert label_prior_loss(labels, terms=2.4) == pytest.approx(2.4 * h)
    # it is the soft-margin loss of the constant answer sigmoid(s_c) = p_c
    p = torch.tensor([0.75, 0.25])
    scores = torch.log(p / (1 - p)).expand(4, 2)
    mlsm = torch.nn.functional.multilabel_soft_margin_loss(scores, torch.tensor(labels, dtype=torch.float32))
    assert float(mlsm) == pytest.approx(h, rel=1e-5)
    with pytest.raises(ValueError, match="multi-hot"):
        label_prior_loss(np.zeros(3))


def test_background_only_miou_by_hand():
    masks = [np.array([[0, 0, 1, 1]]), np.array([[0, 2, 2, 255]])]     # background 3 of 7 labelled pixels
    data = [{"mask": m} for m in masks]
    assert background_only_miou(data, 3) == pytest.approx((3 / 7) / 3)   # bg IoU 3/7, classes 1 and 2 IoU 0


def test_each_symptom_is_named_and_a_good_run_passes():
    good = [{"epoch": 0, "train_cls": 0.3, "train_pseudo_empty": 0.1, "val_miou": 0.6}]
    report = check_learning(good, prior_cls_loss=1.5, background_only_miou=0.12)
    assert report["learned"] and not report["findings"] and "learned" in report["message"]
    bad = [{"epoch": 0, "train_cls": 1.45, "train_pseudo_empty": 0.9, "val_miou": 0.13}]
    report = check_learning(bad, prior_cls_loss=1.5, background_only_miou=0.12)
    assert not report["learned"] and len(report["findings"]) == 3
    assert report["message"].startswith("This run did not learn") and "Likely causes" in report["message"]
    assert "97%" in report["findings"][0] and "90%" in report["findings"][1] and "0.130" in report["findings"][2]
    # a number that was not measured is not judged
    assert check_learning([{"epoch": 0, "train_cls": 1.45}])["learned"]
    with pytest.raises(ValueError, match="empty"):
        check_learning([])


def test_a_run_that_does_not_learn_is_reported(tmp_path, capsys):
    data = {"num_train": 16, "num_val": 4, "image_size": 48}
    root = ensure_default_dataset(tmp_path / "shapes", **data)
    cfg = validate({
        "misc": {"seed": 0, "verbose": 0, "num_snapshots": 0, "device": "cpu"},
        "train": {"lr": 1e-9, "num_epochs": 2, "pretrain_epochs": 0, "batch_size": 4, "num_workers": 0,
                  "lr_multipliers": [1, 1, 1, 1], "max_steps_per_epoch": 2},
        "dataset": {"name": "shapes", "root": str(root), "crop_size": 40, "generate": data},
        "model": {"backbone": "tiny", "num_classes": 7, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
                  "backbone_kwargs": {"width": 8}, "pamr_iter": 2, "pamr_dilations": [1, 2]},
        "test": {"scales": [1.0]},
    })
    trainer = Trainer.build(cfg, tmp_path / "run")
    history = trainer.fit()
    report = trainer.learning_check
    assert not report["learned"], report
    assert report["prior_cls_loss"] == pytest.approx(label_prior_loss(trainer.train_set.image_labels(), terms=2.4))
    assert "This run did not learn" in capsys.readouterr().out          # said even with misc.verbose 0
    assert (tmp_path / "run" / "learning_check.json").is_file()
    assert "train_pseudo_empty" in history[-1]
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)
    assert saved["learning_check"]["learned"] is False


def test_semi_supervised_runs_are_not_judged_by_their_pseudo_labels():
    history = [{"epoch": 0, "train_pseudo_empty": 0.9, "val_miou": 0.5}]
    assert not check_learning(history)["learned"]
    assert check_learning(history, judge_pseudo_labels=False)["learned"]
