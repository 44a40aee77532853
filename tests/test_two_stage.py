"""The second stage of the two-stage recipe: DeepLabV3+ (shapes, a strict checkpoint round trip), the quality of
exported pseudo labels on a hand-made case, and the export folder training the second stage for a few steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from slrnet.checkpoint import save_checkpoint
from slrnet.config import ConfigError, validate
from slrnet.data import VOCSegmentation, ensure_default_dataset
from slrnet.export import export_pseudo_labels
from slrnet.infer import TestConfig
from slrnet.models import build_model
from slrnet.models.deeplab import DeepLabV3Plus
from slrnet.models.loading import load_trained_model
from slrnet.train import Trainer

TINY = {"name": "deeplabv3plus", "backbone": "tiny", "num_classes": 7, "decoder_channels": 16,
        "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}}


def test_forward_shapes_and_loss():
    net = build_model(TINY)
    assert isinstance(net, DeepLabV3Plus) and net.predicts_background and net.variant == "supervised"
    images = torch.randn(2, 3, 40, 48)
    assert net.logits(images).shape == (2, 7, 40, 48)
    out = net.predict(images)
    assert out["scores"] is None and out["masks"].shape == (2, 7, 40, 48)
    torch.testing.assert_close(out["masks"].sum(1), torch.ones(2, 40, 48))
    target = torch.randint(0, 7, (2, 40, 48))
    target[0, :5] = 255
    net.eval()                       # no dropout, running BN statistics: the two passes below agree
    losses = net(images, pixel_labels=target, has_mask=torch.tensor([True, False]))["losses"]
    logits = net.logits(images)
    only_first = target.clone()
    only_first[1] = 255
    expected = nn.functional.cross_entropy(logits, only_first, ignore_index=255)
    torch.testing.assert_close(losses["seg_labelled"], expected, rtol=1e-4, atol=1e-5)
    assert float(losses["cls"]) == float(losses["seg"]) == 0.0
    losses["seg_labelled"].backward()
    assert net.classifier.weight.grad is not None
    assert all(p.grad is not None for p in net.backbone.parameters() if p.requires_grad)


def test_resnet101_at_output_stride_16_and_8_on_the_meta_device():
    with torch.device("meta"):
        for stride in (16, 8):
            net = build_model({**TINY, "backbone": "resnet101", "decoder_channels": 256,
                               "aspp_dilations": [1, 12, 24, 36], "num_classes": 21,
                               "backbone_kwargs": {"output_stride": stride, "frozen": False}})
            assert net.logits(torch.empty(1, 3, 64, 64)).shape == (1, 21, 64, 64)
            assert net.backbone.output_stride == stride


def test_strict_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_model(TINY).eval()
    cfg = validate({"model": TINY})
    save_checkpoint(tmp_path / "m.pth", {"state_dict": net.state_dict(), "config": cfg})
    loaded, loaded_cfg = load_trained_model(tmp_path / "m.pth")
    assert loaded_cfg["model"]["name"] == "deeplabv3plus"
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded.predict(x)["masks"], net.predict(x)["masks"])
    state = net.state_dict()
    state.pop("classifier.bias")
    save_checkpoint(tmp_path / "bad.pth", {"state_dict": state, "config": cfg})
    with pytest.raises(Exception, match="classifier.bias"):
        load_trained_model(tmp_path / "bad.pth")


def test_settings_deeplab_does_not_read_are_refused():
    with pytest.raises(ConfigError, match="model.pamr_iter"):
        validate({"model": {**TINY, "pamr_iter": 3}})
    with pytest.raises(ConfigError, match="train.lr_policy"):
        validate({"train": {"lr_policy": "step"}})


class Oracle(nn.Module):
    """Predicts class 1 on the left half and background on the right, whatever the image."""

    num_classes = 3

    def predict(self, images):
        B, _, H, W = images.shape
        masks = torch.zeros(B, 3, H, W)
        masks[:, 1, :, : W // 2] = 1
        masks[:, 0, :, W // 2:] = 1
        return {"scores": None, "masks": masks}


def test_pseudo_label_quality_on_a_hand_made_case(tmp_path):
    """Ground truth: class 1 on the left quarter, class 2 on the right quarter, background in between; the oracle
    labels the left half 1 and the right half 0. Per class (4 x 8 pixels): background TP 8 of union 24 -> 1/3,
    class 1 TP 8 of union 16 -> 1/2, class 2 TP 0 -> 0; mIoU 5/18."""
    root = tmp_path / "voc"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    mask = np.zeros((4, 8), np.uint8)
    mask[:, :2], mask[:, 6:] = 1, 2
    Image.fromarray(np.full((4, 8, 3), 128, np.uint8)).save(root / "JPEGImages" / "a.jpg")
    Image.fromarray(mask).save(root / "SegmentationClass" / "a.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("a\n")
    (root / "classes.txt").write_text("background\none\ntwo\n")
    train = VOCSegmentation(root, "train")
    info = export_pseudo_labels(Oracle(), train, tmp_path / "out", TestConfig(scales=[1.0], flip=False, bg_pow=1),
                                device="cpu")
    q = info["quality"]
    assert q["per_class"]["background"]["iou"] == pytest.approx(1 / 3)
    assert q["per_class"]["one"]["iou"] == pytest.approx(1 / 2) and q["per_class"]["two"]["iou"] == 0.0
    assert q["miou"] == pytest.approx(5 / 18)


def test_the_export_folder_trains_the_second_stage(tmp_path):
    data = {"num_train": 12, "num_val": 4, "image_size": 48}
    shapes = ensure_default_dataset(tmp_path / "shapes", **data)
    torch.manual_seed(0)
    first = build_model({"name": "slrnet", "backbone": "tiny", "num_classes": 7, "decoder_channels": 16,
                         "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}}).eval()
    export_pseudo_labels(first, VOCSegmentation(shapes, "train"), tmp_path / "pseudo",
                         TestConfig(scales=[1.0], flip=False, use_cls_label=True), device="cpu")
    cfg = validate({
        "misc": {"seed": 0, "verbose": 0, "num_snapshots": 2, "device": "cpu"},
        "train": {"lr": 0.01, "num_epochs": 2, "pretrain_epochs": 0, "batch_size": 4, "loss_coeff": [0, 0, 0, 1],
                  "num_workers": 0,
                  "lr_multipliers": [1, 1, 1, 1], "lr_policy": "poly", "max_steps_per_epoch": 2},
        "dataset": {"name": "voc", "root": str(tmp_path / "pseudo"), "mask_dir": "SegmentationClassAug",
                    "val_root": str(shapes), "crop_size": 40},
        "model": TINY, "test": {"scales": [1.0], "bg_pow": 1},
    })
    trainer = Trainer.build(cfg, tmp_path / "run")
    # trains on the exported pseudo labels, validates on the real masks
    assert trainer.train_set.mask_dir == "SegmentationClassAug" and trainer.train_set.root == tmp_path / "pseudo"
    assert trainer.val_set.root == shapes and len(trainer.val_set) == 4
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit()
    assert len(history) == 2 and 0.0 <= history[-1]["val_miou"] <= 1.0 and history[0]["train_seg_labelled"] > 0
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert not list((tmp_path / "run" / "snapshots").glob("*.png"))        # no pseudo labels to draw
    model, _ = load_trained_model(tmp_path / "run" / "checkpoints" / "last.pth")
    assert isinstance(model, DeepLabV3Plus)
