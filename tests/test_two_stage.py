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


def test_export_writes_the_labels_before_the_crf_from_the_same_pass(tmp_path):
    shapes = ensure_default_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=32)
    torch.manual_seed(0)
    first = build_model({"name": "slrnet", "backbone": "tiny", "num_classes": 7, "decoder_channels": 16,
                         "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}}).eval()
    train = VOCSegmentation(shapes, "train")
    crf = TestConfig(scales=[1.0], flip=False, use_cls_label=True, apply_crf=True)
    info = export_pseudo_labels(first, train, tmp_path / "both", crf, device="cpu", raw_mask_dir="Raw")
    raw_only = export_pseudo_labels(first, train, tmp_path / "raw", crf.replace(apply_crf=False), device="cpu")
    for name in train.names:                 # the raw folder holds what an export without the CRF writes
        assert np.array_equal(np.array(Image.open(tmp_path / "both" / "Raw" / f"{name}.png")),
                              np.array(Image.open(tmp_path / "raw" / "SegmentationClassAug" / f"{name}.png")))
        assert (tmp_path / "both" / "SegmentationClassAug" / f"{name}.png").is_file()
    assert info["quality_before_crf"]["miou"] == pytest.approx(raw_only["quality"]["miou"])
    assert info["raw_mask_dir"] == "Raw" and raw_only["quality_before_crf"] is None
    with pytest.raises(ValueError, match="raw_mask_dir"):
        export_pseudo_labels(first, train, tmp_path / "x", crf.replace(apply_crf=False), device="cpu",
                             raw_mask_dir="Raw")
    with pytest.raises(ValueError, match="raw_mask_dir"):
        export_pseudo_labels(first, train, tmp_path / "x", crf, device="cpu", raw_mask_dir="../Raw")


def test_segmenters_train_on_equal_terms_with_the_first_stage(tmp_path):
    """Quick profile: both DeepLabV3+ train as many images, SGD steps and batch as shapes_quick.yaml's model; the
    second stage reads the pseudo labels, the ceiling the real masks of the same list, both validate on the real val."""
    from slrnet.analysis import two_stage
    from slrnet.profiles import dataset_config, training_config

    first = training_config(dataset_config("shapes", "quick"), "quick", tmp_path)
    real = tmp_path / "shapes"
    cfgs = {kind: two_stage.segmenter_config(kind, None, "quick", tmp_path, tmp_path / "labels", real,
                                             "SegmentationClass", 7, real_list=real / "list.txt")
            for kind in two_stage.SEGMENTERS}
    second, ceiling = cfgs["second_stage"]["dataset"], cfgs["real_masks"]["dataset"]
    assert (second["root"], second["mask_dir"]) == (str(tmp_path / "labels"), two_stage.PSEUDO_MASK_DIR)
    assert (ceiling["root"], ceiling["mask_dir"], ceiling["train_list"]) == (str(real), "SegmentationClass",
                                                                             str(real / "list.txt"))
    assert second["val_root"] == ceiling["val_root"] == str(real)
    assert all(c["model"]["name"] == "deeplabv3plus" and c["model"]["pretrained"] == first["model"]["pretrained"]
               for c in cfgs.values())
    rows = [two_stage.budget_row("single stage", first, 2000)]
    rows += [two_stage.budget_row(kind, c, 2000) for kind, c in cfgs.items()]
    assert two_stage.equal_budget(rows) and rows[1]["SGD steps"] == 12 * 125 and rows[1]["batch"] == 16
    assert not two_stage.equal_budget(rows[:1] + [two_stage.budget_row("half", cfgs["second_stage"], 1000)])
    raw = two_stage.segmenter_config("second_stage", None, "quick", tmp_path, tmp_path / "labels", real,
                                     "SegmentationClass", 7, pseudo_mask_dir=two_stage.RAW_MASK_DIR)
    assert raw["dataset"]["mask_dir"] == two_stage.RAW_MASK_DIR
    with pytest.raises(ValueError, match="kind"):
        two_stage.segmenter_config("third", None, "quick", tmp_path, tmp_path, real, "SegmentationClass", 7)


def test_crf_label_changes_name_the_confusion_the_crf_introduced():
    from slrnet.analysis import two_stage

    names = ["background", "circle", "triangle"]
    mask = np.array([[0, 1, 1, 2], [0, 1, 1, 2]], np.uint8)
    raw = [mask.copy(), np.zeros_like(mask)]
    crf = [np.array([[0, 2, 2, 2], [0, 1, 1, 2]], np.uint8), mask.copy()]     # 2 circle pixels became triangle
    masks = [mask, mask]
    changes = two_stage.crf_label_changes(raw, crf, masks, ["a", "b"], names)
    assert (changes["images"], changes["better"], changes["worse"], changes["unchanged"]) == (2, 1, 1, 0)
    hurt = changes["most_hurt"]
    assert hurt["name"] == "a" and hurt["accuracy_before"] == 1.0 and hurt["accuracy_after"] == 0.75
    assert hurt["worst_confusion"] == {"true": "circle", "crf": "triangle", "pixels": 2}
    text = two_stage.crf_reading(changes)
    assert "made 1 of 2 pseudo labels more accurate and 1 less" in text
    assert "It hurt a most (pixel accuracy 1.000 -> 0.750): 2 pixels of circle that were right became triangle" in text
    void = np.full_like(mask, 255)
    with pytest.raises(ValueError, match="no image has scored pixels"):
        two_stage.crf_label_changes([mask], [mask], [void], ["v"], names)


def test_comparison_reading_says_when_the_ceiling_is_none():
    from slrnet.analysis import two_stage

    assert two_stage.comparison_reading("no CRF", 0.80, 0.85, 0.90) == (
        "no CRF: second stage 0.850 vs single stage 0.800 (+0.050); it closes 50% of the single stage's gap to the "
        "real-mask model (0.900)")
    assert "closes none of the single stage's gap of 0.100" in two_stage.comparison_reading("x", 0.80, 0.78, 0.90)
    low = two_stage.comparison_reading("+ CRF", 0.81, 0.80, 0.79, ceiling_rising=True)
    assert low.endswith("(0.790) scores below the single stage and the second stage: with perfect labels and this "
                        "budget it does not beat them, so it is no ceiling here (its val mIoU was still rising at its "
                        "last validation: it had not converged)")
    assert "below the single stage: with" in two_stage.comparison_reading("x", 0.81, 0.78, 0.80)
    assert two_stage.still_rising([{"val_miou": 0.7}, {"epoch": 1}, {"val_miou": 0.72}])
    assert not two_stage.still_rising([{"val_miou": 0.7}, {"val_miou": 0.703}]) and not two_stage.still_rising([])
