"""Pseudo-label export end to end: dummy model, a tiny generated VOC-layout root, reload as a dataset."""
import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from slrnet.data.voc import VOCSegmentation, load_mask
from slrnet.export import add_cli_arguments, cli_run, export_pseudo_labels
from slrnet.infer import TestConfig, filter_classes, predict_multiscale

K = 4
SCALES = [1.0, 0.5]


class DummyModel(nn.Module):
    """A fixed random conv -> softmax masks, scores = mean foreground logits (no real network needed)."""

    def __init__(self, seed=0):
        super().__init__()
        self.conv = nn.Conv2d(3, K, 3, padding=1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(K, generator=g))

    def predict(self, images):
        logits = self.conv(F.avg_pool2d(images, 2, ceil_mode=True))          # (B, K, h, w)
        return {"scores": logits[:, 1:].mean((2, 3)), "masks": logits.softmax(1)}


def make_voc(root, n=4, size=(12, 16)):
    """JPEGImages/, SegmentationClass/ (two classes per image), train.txt, val.txt, classes.txt."""
    rng = np.random.default_rng(0)
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"im{i}.jpg")
        mask = np.zeros(size, dtype=np.uint8)
        mask[:, size[1] // 2:] = 1 + i % (K - 1)          # one foreground class per image
        mask[0, 0] = 255
        Image.fromarray(mask).save(root / "SegmentationClass" / f"im{i}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"im{i}\n" for i in range(n - 1)))
    (root / "ImageSets/Segmentation/val.txt").write_text(f"im{n - 1}\n")
    (root / "classes.txt").write_text("background\ncat\ndog\ncow\n")
    return root


def test_export_end_to_end(tmp_path):
    src = make_voc(tmp_path / "voc")
    train = VOCSegmentation(src, split="train")
    model = DummyModel().eval()
    out = tmp_path / "pseudo"
    info = export_pseudo_labels(model, train, out, TestConfig(scales=SCALES, bg_pow=3, use_cls_label=True,
                                                              apply_crf=True), device="cpu", num_workers=1)
    names = ["im0", "im1", "im2"]
    assert (out / "ImageSets/Segmentation/train_aug.txt").read_text().split() == names
    pairs = (out / "ImageSets/Segmentation/train_aug_pairs.txt").read_text().splitlines()
    assert pairs == [f"/JPEGImages/{n}.jpg /SegmentationClassAug/{n}.png" for n in names]
    assert (out / "JPEGImages").is_symlink() and (out / "classes.txt").read_text() == (src / "classes.txt").read_text()
    assert info["uses_gt_labels"] is True and info["num_images"] == 3

    # labels hold only background and the image's own class; raw labels equal the direct computation
    raw = export_pseudo_labels(model, train, tmp_path / "raw", TestConfig(scales=SCALES, bg_pow=3, use_cls_label=True),
                               device="cpu", link_images=False)
    assert not (tmp_path / "raw" / "JPEGImages").exists()
    for i, name in enumerate(names):
        s = train[i]
        scores, probs = predict_multiscale(model, s["image"], SCALES)
        expected = filter_classes(probs, scores, labels=s["labels"], bg_pow=3).argmax(0).numpy()
        got = load_mask(tmp_path / "raw" / "SegmentationClassAug" / f"{name}.png")
        np.testing.assert_array_equal(got, expected)
        allowed = {0, 1 + i % (K - 1)}
        assert set(np.unique(load_mask(out / "SegmentationClassAug" / f"{name}.png")).tolist()) <= allowed

    # the exported root is a training set for a fully supervised segmenter: both list formats load
    for list_name in ("train_aug.txt", "train_aug_pairs.txt"):
        reloaded = VOCSegmentation(out, split="train", list_file=list_name, mask_dir="SegmentationClassAug")
        assert reloaded.names == names and reloaded.class_names == ("background", "cat", "dog", "cow")
        np.testing.assert_array_equal(reloaded[1]["mask"].numpy(),
                                      load_mask(out / "SegmentationClassAug" / "im1.png"))
        np.testing.assert_array_equal(reloaded[1]["image"].numpy(), train[1]["image"].numpy())

    # pseudo-label quality against the training masks, recorded in the summary
    saved = json.loads((out / "export_summary.json").read_text())
    assert saved["quality"]["num_pixels"] == 3 * (12 * 16 - 1)
    assert raw["quality"]["miou"] is not None and 0.0 <= raw["quality"]["miou"] <= 1.0


def test_export_refuses_val_and_the_source_root(tmp_path):
    src = make_voc(tmp_path / "voc")
    model = DummyModel().eval()
    val = VOCSegmentation(src, split="val")
    with pytest.raises(ValueError, match="allow_label_leak"):
        export_pseudo_labels(model, val, tmp_path / "x", TestConfig(scales=[1.0], use_cls_label=True), device="cpu")
    train = VOCSegmentation(src, split="train")
    (src / "SegmentationClassAug").mkdir()
    with pytest.raises(ValueError, match="overwrite"):
        export_pseudo_labels(model, train, src, TestConfig(scales=[1.0], use_cls_label=True), device="cpu")


def test_export_cli(tmp_path, monkeypatch, capsys):
    import slrnet.export as export
    from slrnet.config import validate

    src = make_voc(tmp_path / "voc")
    cfg = validate({"model": {"num_classes": K}, "test": {"scales": [1.0]}})
    monkeypatch.setattr(export, "load_trained_model", lambda checkpoint, config, device, **kw: (DummyModel().eval(), cfg))
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--config", "c.yaml", "--checkpoint", "p.pth", "--output", str(tmp_path / "out"),
                              "--data_root", str(src), "--data_list", "train.txt", "--apply_crf", "0",
                              "--device", "cpu", "--num_workers", "1"])
    assert cli_run(args) == 0
    assert "wrote 3 pseudo labels" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "SegmentationClassAug").glob("*.png"))) == 3
