"""Semi-supervised SLRNet (METHOD.md section 4): both variants at model, trainer, config and CLI level.

Fixture-level checks of the variant's pieces live elsewhere: ``pseudo_gt_wo_cls*`` and
``loss_wo_cls`` / ``grad_logits_wo_cls`` in tests/test_losses.py, ``runpamr_bgpow3_*`` in
tests/test_mods.py. Here the model's wiring of them is checked against the same fixtures.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slrnet import losses as L
from slrnet.cli import main
from slrnet.config import load_config, validate
from slrnet.data import ensure_default_dataset
from slrnet.models import build_model
from slrnet.train import Trainer

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}, "pamr_iter": 3, "pamr_dilations": [1, 2]}
TINY_DATA = {"num_train": 24, "num_val": 2, "image_size": 48}
TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5)}


@pytest.fixture
def batch():
    """3 images; pixel labels consistent with the image labels; images 0 and 2 pixel-labelled."""
    torch.manual_seed(0)
    images = torch.randn(3, 3, 48, 48)
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    pixels = torch.zeros(3, 48, 48, dtype=torch.long)
    pixels[0, 5:20, 5:20], pixels[0, 30:45, 10:40] = 1, 3
    pixels[1, 10:30, 10:30] = 2
    pixels[2, 20:40, 20:40] = 4
    pixels[:, :, 24:26] = 255                                       # a void band
    return images, labels, pixels, torch.tensor([True, False, True])


def one_hot_with_void(pixels, k):
    return F.one_hot(pixels.clamp(max=k - 1), k).permute(0, 3, 1, 2).float() * (pixels != 255)[:, None].float()


# ----------------------------------------------------------------------------- model level
def test_semi_ground_truth_replaces_pseudo_label_and_classification_loss(batch):
    images, labels, pixels, has_mask = batch
    net = build_model({**TINY, "name": "slrnet_semi"}).eval()      # eval: dropout / gate deterministic
    out = net(images, labels, pixel_labels=pixels, has_mask=has_mask)
    weak = net(images, labels)                                      # the same images without pixel labels
    gt, pseudo = one_hot_with_void(pixels, 5), out["maps"]["pseudo_gt"]
    assert torch.equal(pseudo[has_mask], gt[has_mask])              # void pixels all zero = ignored
    assert torch.equal(pseudo[~has_mask], weak["maps"]["pseudo_gt"][~has_mask])
    assert not torch.equal(weak["maps"]["pseudo_gt"][has_mask], gt[has_mask])
    lo, wo = out["losses"], weak["losses"]
    # labelled images: their classification loss is their segmentation loss; the others keep MLSM
    assert torch.equal(lo["cls_per_image"][has_mask], lo["seg_per_image"][has_mask])
    torch.testing.assert_close(lo["cls_per_image"][~has_mask], wo["cls_per_image"][~has_mask])
    torch.testing.assert_close(lo["cls"], lo["cls_per_image"].mean())
    torch.testing.assert_close(lo["seg_labelled"], lo["seg_per_image"][has_mask].mean())
    assert lo["seg_labelled"] > 0 and wo["seg_labelled"] == 0       # no pixel labels: nothing to add


def test_semi_labelled_segmentation_loss_has_gradients(batch):
    images, labels, pixels, has_mask = batch
    net = build_model({**TINY, "name": "slrnet_semi"})
    out = net(images, labels, pixel_labels=pixels, has_mask=has_mask)
    out["losses"]["seg_labelled"].backward()                      # the term used during pretraining
    head = net.last_conv[-1].weight.grad
    assert head is not None and head.abs().sum() > 0


def test_semi_wo_cls_predicts_background_and_uses_no_image_labels(batch):
    images, labels, pixels, has_mask = batch
    net = build_model({**TINY, "name": "slrnet_semi_wo_cls", "cutoff_top": 0.8, "cutoff_low": 0.6}).eval()
    assert net.last_conv[-1].out_channels == 5 and net.aux_head[-1].out_channels == 5   # K, background included
    out = net(images, labels, pixel_labels=pixels, has_mask=has_mask)
    assert out["scores"] is None and net.predict(images)["scores"] is None
    torch.testing.assert_close(net.predict(images)["masks"].sum(1), torch.ones(3, 48, 48))
    hidden = net(images, torch.zeros_like(labels), pixel_labels=pixels, has_mask=has_mask)
    none = net(images, None, pixel_labels=pixels, has_mask=has_mask)
    for k in ("mask", "code", "seg", "cls", "seg_labelled"):       # image labels change nothing
        assert torch.equal(out["losses"][k], hidden["losses"][k]) and torch.equal(out["losses"][k], none["losses"][k])
    assert out["losses"]["mask"] > 0                                # consistency over all foreground classes
    assert out["maps"]["refined"][~has_mask][:, 1:].amax() > 0      # no class filtering of pseudo labels
    lo = out["losses"]
    assert torch.equal(lo["cls_per_image"][has_mask], lo["seg_per_image"][has_mask])
    assert bool((lo["cls_per_image"][~has_mask] == 0).all())        # no classification loss otherwise
    assert torch.equal(out["maps"]["pseudo_gt"][has_mask], one_hot_with_void(pixels, 5)[has_mask])


def test_wo_cls_segmentation_loss_has_no_beta(batch):
    """An image whose pixel labels hold fewer classes than its image labels + 1: beta = 0 with image
    labels (the original's count rule), but the wo_cls variant has no such rule."""
    images, labels, pixels, _ = batch
    labels = labels.clone()
    labels[0, 1] = 1                                                # claims class 2, absent from the pixels
    has_mask = torch.tensor([True, True, True])
    with_cls = build_model({**TINY, "name": "slrnet_semi"}).eval()(images, labels, pixels, has_mask)
    wo_cls = build_model({**TINY, "name": "slrnet_semi_wo_cls"}).eval()(images, labels, pixels, has_mask)
    assert with_cls["losses"]["seg_per_image"][0] == 0 and with_cls["losses"]["seg_per_image"][2] > 0
    assert wo_cls["losses"]["seg_per_image"][0] > 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wo_cls_pseudo_labels_follow_the_fixture(dtype):
    """The model's pseudo-label path (bg cubed before PAMR at mask size, no class filtering,
    thresholds 0.9 / 0.8 / 0.6) reproduces run_pamr's bg_pow=3 fixture and leaves its input alone."""
    z = np.load(FIXTURES / "pamr.npz")
    net = build_model({**TINY, "name": "slrnet_semi_wo_cls", "pamr_iter": 10, "pamr_dilations": [1, 2, 4, 8, 12, 24],
                       "cutoff_top": 0.8, "cutoff_low": 0.6}).to(dtype)
    image = torch.from_numpy(z["runpamr_image"]).to(dtype)                       # (2, 3, 48, 64) in [0, 1]
    normalised = (image - net._mean) / net._std
    cam = torch.from_numpy(z["runpamr_mask"]).to(dtype)                          # (2, 5, 12, 16)
    before = cam.clone()
    maps = net._pseudo_labels(normalised, cam, None, (48, 64))
    assert torch.equal(cam, before)                                              # the original cubes it in place
    expected = F.interpolate(torch.from_numpy(z["runpamr_bgpow3_refined"]).to(dtype), size=(48, 64),
                             mode="bilinear", align_corners=True)
    torch.testing.assert_close(maps["refined"], expected, **TOL[dtype])
    assert torch.equal(maps["pseudo_gt"], L.pseudo_labels(maps["refined"], 0.9, 0.8, 0.6))
    # the weakly supervised variant does not cube the background (and filters by labels)
    semi = build_model({**TINY, "name": "slrnet_semi", "pamr_iter": 10,
                        "pamr_dilations": [1, 2, 4, 8, 12, 24]}).to(dtype)
    labels = torch.tensor([[1.0, 1, 1, 1], [1, 0, 1, 0]], dtype=dtype)
    maps = semi._pseudo_labels(normalised, cam, labels, (48, 64))
    plain = F.interpolate(torch.from_numpy(z["runpamr_refined"]).to(dtype), size=(48, 64), mode="bilinear",
                          align_corners=True)
    torch.testing.assert_close(maps["refined"][0], plain[0], **TOL[dtype])
    assert maps["refined"][1, 2].abs().max() == 0 and maps["refined"][1, 4].abs().max() == 0


@pytest.mark.parametrize("name", ["slrnet_semi", "slrnet_semi_wo_cls"])
@pytest.mark.parametrize("has_mask", [[True, False, True, False, False], [True] * 5, [False] * 5])
def test_pseudo_labels_skip_refining_pixel_labelled_images(name, has_mask):
    """PAMR and the thresholds run only on images without pixel labels: the pseudo labels (and the refined
    maps of those images) equal refining the whole batch and then replacing the labelled ones by their ground
    truth, bit for bit."""
    torch.manual_seed(1)
    net = build_model({**TINY, "name": name}).eval()
    images, cam = torch.randn(5, 3, 48, 48), torch.rand(5, 5, 12, 12).softmax(1)
    labels = None if name == "slrnet_semi_wo_cls" else (torch.rand(5, 4) < 0.5).float()
    pixels = torch.randint(0, 5, (5, 48, 48))
    pixels[:, 20:24] = 255
    has_mask = torch.tensor(has_mask)
    whole = net._pseudo_labels(images, cam, labels, (48, 48))                     # refine every image
    expected = L.replace_with_ground_truth(whole["pseudo_gt"], pixels, has_mask, 5)
    maps = net._pseudo_labels(images, cam, labels, (48, 48), pixels, has_mask)
    assert torch.equal(maps["pseudo_gt"], expected)
    assert torch.equal(maps["refined"][~has_mask], whole["refined"][~has_mask])
    assert torch.equal(maps["refined"][has_mask], one_hot_with_void(pixels, 5)[has_mask])
    assert torch.equal(maps["cam"], whole["cam"])


def test_semi_terms_helper():
    seg = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    cls, seg_labelled = L.semi_supervised_terms(torch.tensor([5.0, 6.0, 7.0]), seg, torch.tensor([True, False, True]))
    assert cls.tolist() == [1.0, 6.0, 3.0] and seg_labelled.item() == 2.0
    cls, seg_labelled = L.semi_supervised_terms(None, seg, torch.tensor([False, False, False]))
    assert cls.tolist() == [0.0, 0.0, 0.0] and seg_labelled.item() == 0.0 and seg_labelled.requires_grad
    with pytest.raises(ValueError, match="has_mask"):
        L.semi_supervised_terms(None, seg, torch.tensor([True]))
    with pytest.raises(ValueError, match="use_cvlr"):
        build_model({**TINY, "name": "slrnet_semi", "use_cvlr": False})


# ----------------------------------------------------------------------------- trainer and configs
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return ensure_default_dataset(tmp_path_factory.mktemp("data") / "shapes", **TINY_DATA)


def test_trainer_feeds_pixel_labels_and_keeps_labelled_seg_on_during_pretraining(tmp_path, tiny_root):
    c = [0.5, 2.0, 2.0, 0.5]
    cfg = validate({
        "misc": {"seed": 1, "verbose": 0, "log_freq": 1, "num_snapshots": 2, "device": "cpu"},
        "train": {"lr": 0.01, "num_epochs": 2, "pretrain_epochs": 0, "batch_size": 6, "num_workers": 0,
                  "lr_multipliers": [1, 1, 1, 1], "max_steps_per_epoch": 1, "loss_coeff": c, "val_max_images": 1},
        "dataset": {"name": "shapes", "root": str(tiny_root), "generate": TINY_DATA, "crop_size": 40,
                    "labelled_ratio": 0.25, "oversample_rate": 3},
        "model": {**TINY, "num_classes": 7, "name": "slrnet_semi"},
        "test": {"scales": [1.0], "bg_pow": 1},
    })
    trainer = Trainer.build(cfg, tmp_path / "run")
    assert len(trainer.train_set) == 24 + 6 * 2 and trainer.train_set.unlabelled_mode == "image_labels"
    seen = []
    forward = trainer.model.forward

    def spy(images, labels, pixel_labels=None, has_mask=None, seg_loss=True):
        out = forward(images, labels, pixel_labels=pixel_labels, has_mask=has_mask, seg_loss=seg_loss)
        if pixel_labels is not None:                                        # training steps, not snapshots
            seen.append((pixel_labels, has_mask, {k: v.item() for k, v in out["losses"].items() if v.dim() == 0}))
        return out

    trainer.model.forward = spy
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "step" in r]
    assert len(steps) == 2 and len(seen) == 2
    for i, (pixels, has_mask, losses) in enumerate(seen):
        assert pixels is not None and has_mask is not None and has_mask.any()
        assert bool((pixels[~has_mask] == 255).all())                       # nothing leaks from the unlabelled part
        assert (pixels[has_mask] != 255).any()
        expected = c[0] * losses["cls"] + c[1] * losses["mask"] + c[2] * losses["code"] + c[3] * losses["seg_labelled"]
        if i == 1:                                                           # epoch 1 > pretrain_epochs = 0
            expected += c[3] * losses["seg"]
        assert steps[i]["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
        assert steps[i]["seg_labelled"] > 0


def test_voc_semi_configs_hold_the_released_recipes():
    w = load_config(CONFIGS / "voc_semi_w_cls_resnet38.yaml")
    wo = load_config(CONFIGS / "voc_semi_wo_cls_resnet38.yaml")
    assert (w["model"]["name"], wo["model"]["name"]) == ("slrnet_semi", "slrnet_semi_wo_cls")
    assert w["train"]["loss_coeff"] == [0.5, 2, 2, 0.5] and wo["train"]["loss_coeff"] == [1, 4, 4, 1]
    assert (w["train"]["batch_size"], w["dataset"]["crop_size"], w["dataset"]["oversample_rate"]) == (8, 448, 3)
    assert (wo["train"]["batch_size"], wo["dataset"]["crop_size"], wo["dataset"]["oversample_rate"]) == (10, 448, 7)
    assert (w["train"]["num_epochs"], w["train"]["pretrain_epochs"]) == (30, 5)
    assert (wo["train"]["num_epochs"], wo["train"]["pretrain_epochs"]) == (40, 10)
    assert (wo["model"]["cutoff_top"], wo["model"]["cutoff_low"]) == (0.8, 0.6)
    for cfg in (w, wo):
        assert cfg["dataset"]["labelled_list"].endswith("train.txt") and cfg["test"]["bg_pow"] == 1
        assert cfg["dataset"]["train_list"].endswith("train_aug.txt")


@pytest.mark.parametrize("name", ["shapes_semi_w_cls_quick", "shapes_semi_wo_cls_quick"])
def test_shapes_semi_config_trains_two_steps_from_the_cli(tmp_path, tiny_root, name, capsys):
    overrides = [f"misc.log_dir={tmp_path}", "misc.verbose=0", f"dataset.root={tiny_root}",
                 "dataset.generate={num_train: 24, num_val: 2, image_size: 48}", "dataset.crop_size=40",
                 "dataset.labelled_ratio=0.25", "train.batch_size=4", "train.num_epochs=2", "train.pretrain_epochs=0",
                 "train.max_steps_per_epoch=1", "train.val_max_images=1", "model.backbone_kwargs={width: 8}",
                 "model.decoder_channels=16", "model.pamr_iter=2", "model.pamr_dilations=[1, 2]", "test.scales=[1.0]",
                 "model.pretrained=''"]     # random weights: the tiny backbone's pretraining has its own tests
    code = main(["train", "--config", str(CONFIGS / f"{name}.yaml"), "--run", "t", "--device", "cpu", *overrides])
    assert code == 0, capsys.readouterr().err
    run = tmp_path / name / "t"
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1] and 0 <= history[-1]["val_miou"] <= 1
    assert np.isfinite(history[-1]["train_seg_labelled"])
    assert (run / "checkpoints" / "last.pth").is_file()
