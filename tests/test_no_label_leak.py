"""No weakly supervised run ever sees a pixel label, whatever its dataset holds.

Every shipped config is built through ``Trainer.build`` on a generated VOC-layout set in which *every* training
image has its mask, shrunk to a tiny backbone (the variant, its losses and its pseudo-label rule kept), and trains
one step with the segmentation loss on. A forward pre-hook on the network records what the training step hands it:
a weakly supervised variant must receive no pixel-label tensor at all; a semi-supervised one must receive them
(the labelled part of its split), so the test also fails if the trainer stops passing labels everywhere.
"""
from pathlib import Path

import pytest
import torch

from slrnet.config import load_config, merge_overrides
from slrnet.data import ensure_default_dataset
from slrnet.train import Trainer
from slrnet.variants import variant

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_DATA = {"num_train": 16, "num_val": 2, "image_size": 48}
SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "profiles.yaml")
SLRNET_CONFIGS = [name for name in SHIPPED
                  if variant(load_config(CONFIGS / name)["model"]["name"]).network != "deeplabv3plus"]


@pytest.fixture(scope="module")
def all_masks_root(tmp_path_factory):
    """A generated VOC-layout set: every training image has a ground-truth mask on disk."""
    return ensure_default_dataset(tmp_path_factory.mktemp("data") / "shapes", **TINY_DATA)


def tiny_version(name: str, root: Path) -> dict:
    """The shipped config ``name`` on the tiny set and a tiny backbone; variant, losses and cut-offs kept."""
    cfg = load_config(CONFIGS / name)
    model = {"backbone": "tiny", "pretrained": "", "num_classes": 7, "decoder_channels": 16,
             "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}, "pamr_iter": 2,
             "pamr_dilations": [1, 2], "scale_factor": 0.75}
    if cfg["model"].get("class_weights") is not None:
        model["class_weights"] = [1.0] * 6          # COCO's 80 weights, one per foreground class of this set
    dataset = {"name": "shapes", "root": str(root), "generate": dict(TINY_DATA), "crop_size": 40,
               "val_root": None, "labelled_ratio": 0.5, "labelled_list": None,
               "train_list": "ImageSets/Segmentation/train.txt", "val_list": "ImageSets/Segmentation/val.txt",
               "mask_dir": "SegmentationClass"}
    train = {"num_epochs": 1, "pretrain_epochs": 0, "batch_size": 4, "num_workers": 0, "max_steps_per_epoch": 1,
             "num_samples": 0, "val_every": 0, "lr": 0.001}
    misc = {"device": "cpu", "verbose": 0, "num_snapshots": 0, "seed": 0, "amp": False}
    over = {f"{section}.{k}": v for section, values in
            (("model", model), ("dataset", dataset), ("train", train), ("misc", misc)) for k, v in values.items()
            if k in cfg[section] or section != "dataset"}
    return merge_overrides(cfg, over)


@pytest.mark.parametrize("name", SLRNET_CONFIGS)
def test_a_training_step_hands_pixel_labels_only_to_semi_supervised_variants(name, all_masks_root, tmp_path,
                                                                          monkeypatch):
    cfg = tiny_version(name, all_masks_root)
    spec = variant(cfg["model"]["name"])
    trainer = Trainer.build(cfg, tmp_path / "run")
    seen = []

    def record(module, args, kwargs):
        tensors = [v for v in list(args[2:]) + [kwargs.get("pixel_labels"), kwargs.get("has_mask")]
                   if isinstance(v, torch.Tensor)]
        seen.append(len(tensors))

    trainer.model.register_forward_pre_hook(record, with_kwargs=True)
    monkeypatch.setattr(Trainer, "validate", lambda self: {})       # one training step is what is looked at
    trainer.fit()
    assert seen, "the training step did not call the network"
    if spec.semi_supervised:
        assert seen[0] == 2, f"{name}: the semi-supervised variant {spec.name} got no pixel labels"
    else:
        assert seen[0] == 0, f"{name}: the weakly supervised variant {spec.name} was handed pixel labels"
