"""Classification pretraining of the tiny backbone (the teaching profile's ImageNet stand-in)."""
import json

import numpy as np
import pytest
import torch

from slrnet import pretrain as P
from slrnet.checkpoint import save_checkpoint
from slrnet.config import merge_overrides, save_config
from slrnet.data import ensure_default_dataset
from slrnet.data.synthetic import render_sample
from slrnet.models import build_model
from slrnet.models.backbones import build_backbone

SMALL = {"num_images": 16, "image_size": 48, "input_size": 32, "steps": 4, "batch_size": 4}


def test_options_are_checked():
    assert P.full_options()["steps"] == P.DEFAULT_OPTIONS["steps"]
    opts = P.full_options(steps=np.int64(20), lr=1)               # numpy and int inputs, plain numbers out
    assert type(opts["steps"]) is int and type(opts["lr"]) is float and json.dumps(opts)
    with pytest.raises(ValueError, match="unknown option.*'step'"):
        P.full_options(step=10)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        P.full_options(steps=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        P.full_options(lr=-1.0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        P.full_options(seed=-1)


def test_pretraining_images_come_from_their_own_stream():
    images, labels = P.pretraining_images(6, image_size=48, seed=0)
    assert images.shape == (6, 3, 48, 48) and images.dtype == torch.uint8 and labels.shape == (6, 6)
    for i in range(6):
        image, mask, _ = render_sample(np.random.default_rng([0, 2, i]), 48)
        assert torch.equal(images[i], torch.from_numpy(image).permute(2, 0, 1))
        present = {int(c) for c in np.unique(mask) if 0 < c < 255}
        assert {int(c) + 1 for c in torch.nonzero(labels[i]).flatten()} == present
        # never a train (code 0) or val (code 1) image of the dataset with the same seed
        for code in (0, 1):
            other, _, _ = render_sample(np.random.default_rng([0, code, i]), 48)
            assert not np.array_equal(image, other)


def test_classifier_learns_beyond_the_label_prior():
    torch.manual_seed(0)
    images, labels = P.pretraining_images(64, image_size=48, seed=1)
    backbone = build_backbone("tiny", width=8)
    history = P.train_classifier(backbone, images, labels, steps=300, batch_size=16, lr=0.05, input_size=48,
                                 device="cpu")
    prior = labels.mean(0)                                   # best constant prediction per class
    prior_loss = float(torch.nn.functional.binary_cross_entropy(prior.expand_as(labels), labels))
    assert len(history) == 3 and not backbone.training
    assert history[-1]["loss"] < 0.8 * prior_loss, (history, prior_loss)


def test_ensure_makes_reuses_and_remakes(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    assert P.ensure_pretrained_backbone(path, width=4, device="cpu", **SMALL) == path
    assert torch.equal(torch.rand(3), expected_next)         # the caller's random stream is untouched
    record = json.loads((tmp_path / "tiny.pth.json").read_text())
    assert record["width"] == 4 and record["options"]["steps"] == 4 and "final_accuracy" in record
    backbone = build_backbone("tiny", width=4)
    report = backbone.load_pretrained(path)                  # a plain state_dict, read with weights_only
    assert not report.missing and not report.unexpected
    stamp = path.stat().st_mtime_ns
    assert P.is_current(path, 4, **SMALL) and not P.is_current(path, 8, **SMALL)
    P.ensure_pretrained_backbone(path, width=4, device="cpu", **SMALL)
    assert path.stat().st_mtime_ns == stamp                  # reused
    P.ensure_pretrained_backbone(path, width=4, device="cpu", **{**SMALL, "steps": 5})
    assert json.loads((tmp_path / "tiny.pth.json").read_text())["options"]["steps"] == 5   # made again
    assert P.read_record(path)["sha256"] == P.file_sha256(path)
    save_checkpoint(path, {k: v + 1 for k, v in torch.load(path, weights_only=True).items()})   # replaced, record kept
    assert not P.is_current(path, 4, **{**SMALL, "steps": 5})


def test_cli_makes_keeps_and_forces(tmp_path, capsys):
    from slrnet.cli import main

    path = tmp_path / "tiny_w4_photos.pth"
    flags = ["pretrain", "--output", str(path), "--device", "cpu", "--num-images", "16",
             "--image-size", "48", "--input-size", "32", "--steps", "4", "--batch-size", "4"]
    assert main(flags) == 0
    assert "made; stream photos, width 4" in capsys.readouterr().out          # stream and width from the name
    assert P.is_current(path, 4, **SMALL, stream="photos")
    assert main(flags) == 0 and "current, kept" in capsys.readouterr().out
    assert main(flags + ["--force"]) == 0 and ": made;" in capsys.readouterr().out
    foreign = tmp_path / "own.pth"
    save_checkpoint(foreign, {"w": torch.zeros(1)})
    assert main(["pretrain", "--output", str(foreign), "--force"]) == 2
    assert "own.pth exists but has no own.pth.json record" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["tiny_w16_shapes.pth", "tiny_w16_photos.pth"])
def test_shipped_weights_are_what_the_code_makes_now(name):
    """weights/ ships the quick configs' starting weights; their records must match today's options, generator
    versions and file bytes, or a config would silently remake them (and dirty the checkout) on first use."""
    from slrnet.utils import repo_root

    path = repo_root() / "weights" / name
    record = P.read_record(path)
    assert record is not None and path.is_file(), f"{path} or its record is missing"
    assert P.is_current(path, 16, stream=P.stream_of(path)), record["options"]
    assert record["final_accuracy"] > 0.5 and record["seconds"] > 0
    report = build_backbone("tiny", width=16).load_pretrained(path)
    assert not report.missing and not report.unexpected


def test_ensure_never_overwrites_a_foreign_file(tmp_path):
    path = tmp_path / "weights.pth"
    save_checkpoint(path, {"w": torch.zeros(1)})
    with pytest.raises(FileExistsError, match="weights.pth.*refusing to overwrite"):
        P.ensure_pretrained_backbone(path, width=4, **SMALL)


def test_trainer_makes_missing_tiny_weights_and_starts_from_them(tmp_path, monkeypatch, tiny_cfg):
    from slrnet.train import Trainer

    monkeypatch.setattr(P, "DEFAULT_OPTIONS", {**P.DEFAULT_OPTIONS, **SMALL})
    root = ensure_default_dataset(tmp_path / "shapes", num_train=8, num_val=2, image_size=48)
    weights = tmp_path / "pretrained" / "tiny_w8.pth"
    cfg = tiny_cfg(root, **{"model.pretrained": str(weights)})
    trainer = Trainer.build(cfg, tmp_path / "run")
    assert weights.is_file() and P.is_current(weights, 8)
    saved = torch.load(weights, weights_only=True)
    for key, value in trainer.model.backbone.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    # a file made here for another width is made again; a user's own file (no record) is used as it is
    trainer = Trainer.build(merge_overrides(cfg, {"model.backbone_kwargs": {"width": 4}, "model.decoder_channels": 8}),
                      tmp_path / "run4")
    assert P.is_current(weights, 4) and trainer.model.backbone.width == 4
    own = tmp_path / "own.pth"
    save_checkpoint(own, build_backbone("tiny", width=8).state_dict())
    stamp = own.stat().st_mtime_ns
    Trainer.build(merge_overrides(cfg, {"model.pretrained": str(own)}), tmp_path / "run_own")
    assert own.stat().st_mtime_ns == stamp and not (tmp_path / "own.pth.json").exists()
    # inference builds the model from the config, then every weight from the checkpoint: no pretrained file needed
    from slrnet.models.loading import load_trained_model

    cfg["model"]["pretrained"] = str(tmp_path / "absent.pth")
    save_config(cfg, tmp_path / "cfg.yaml")
    save_checkpoint(tmp_path / "model.pth", {"state_dict": build_model({**cfg["model"], "pretrained": ""}).state_dict()})
    model, _ = load_trained_model(tmp_path / "model.pth", tmp_path / "cfg.yaml")
    assert model.backbone.width == 8


def test_missing_weights_of_other_backbones_are_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        build_model({"backbone": "resnet101", "num_classes": 3, "pretrained": str(tmp_path / "absent.pth"),
                     "decoder_channels": 256})


def test_the_photos_stream_alternates_composed_scenes_and_single_views():
    from slrnet.data.generated import PRETRAIN_SPLIT_CODE
    from slrnet.data.photos import PHOTOS, render_view

    images, labels = P.pretraining_images(4, image_size=48, seed=0, stream="photos")
    assert images.shape == (4, 3, 48, 48) and labels.shape == (4, 10)
    composed, mask = PHOTOS.sample(PRETRAIN_SPLIT_CODE, 1, image_size=48)          # image 2 is the second scene
    assert torch.equal(images[2], torch.from_numpy(composed).permute(2, 0, 1))
    view, view_mask = render_view(np.random.default_rng([0, PRETRAIN_SPLIT_CODE, 0, 1]), 48)   # image 1: a view
    assert torch.equal(images[1], torch.from_numpy(view).permute(2, 0, 1))
    assert labels[1].sum() == (1 if view_mask.max() > 0 else 0)                    # one object, or a scene: none
    mixed_images, mixed = P.pretraining_images(2, image_size=48, seed=0, stream="mixed")
    assert mixed.shape == (2, 16) and mixed[0, 6:].sum() == 0 and mixed[1, :6].sum() == 0   # shapes first
    with pytest.raises(ValueError, match="stream must be one of"):
        P.pretraining_images(2, stream="imagenet")


def test_streams_have_their_own_defaults_and_come_from_the_file_name():
    assert P.full_options()["steps"] == P.DEFAULT_OPTIONS["steps"]
    assert P.full_options(stream="photos")["steps"] == P.STREAM_DEFAULTS["photos"]["steps"]
    assert P.full_options(stream="photos", steps=5)["steps"] == 5
    assert P.stream_of("data/pretrained/tiny_w16_photos.pth") == "photos"
    assert P.stream_of("data/pretrained/tiny_w16_shapes.pth") == "shapes"
    assert P.stream_of("/tmp/my_weights.pth") == "shapes"        # no stream in the name: the default
    assert P.width_of("weights/tiny_w16_photos.pth") == 16 and P.width_of("tiny_w8.pth") == 8
    assert P.width_of("/tmp/my_weights.pth") == build_backbone("tiny").width   # no width in the name: the model's


def test_every_embedded_dataset_config_starts_from_shipped_weights():
    from slrnet.config import load_config
    from slrnet.utils import repo_root

    configs = sorted((repo_root() / "configs").glob("shapes_*.yaml")) + sorted((repo_root() / "configs").glob("photos_*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        model = load_config(path)["model"]
        dataset = path.name.split("_", 1)[0]
        assert model["pretrained"] == f"weights/tiny_w16_{dataset}.pth", path.name
        assert P.stream_of(model["pretrained"]) == dataset
