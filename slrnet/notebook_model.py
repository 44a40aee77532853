"""The model an analysis notebook works on: notebook 02's checkpoint, a given one, or a short run trained here.

Notebooks 04 (low-rank factors) and 05 (evaluation) look at a trained SLRNet. By default they use the
checkpoint notebook 02 saves in its output folder, the sibling of theirs; a ``checkpoint`` parameter names
any other; and when there is none they train a short run of ``configs/shapes_quick.yaml`` first, so every
notebook also runs alone.

    >>> from slrnet.notebook_model import load_or_train
    >>> model, cfg, info = load_or_train(None, "outputs/05_evaluate", profile="quick")
    >>> info["source"], info["checkpoint"]         # "checkpoint" / "trained here", the file the weights are in
    >>> model, cfg = load_model("runs/demo/checkpoints/last.pth", device="cpu")   # any checkpoint, eval mode
    >>> val = evaluation_set(cfg, split="val", num_classes=model.num_classes)   # full images with masks

Checkpoints read: ``{'state_dict', 'config', ...}`` as notebook 02 and ``slrnet.train.Trainer`` save them,
or a Trainer run's ``<run>/checkpoints/*.pth`` whose config is the run's ``<run>/config.yaml``.
Training: ``slrnet.profiles.training_config(config, profile, output_dir, data_root)`` plus
``TRAIN_OVERRIDES[profile]``, written to ``<output_dir>/train_run``.
"""
from __future__ import annotations

import time
from pathlib import Path

from slrnet.profiles import check_profile, training_config

NOTEBOOK_02 = "02_train_weakly_supervised"

# Overrides of training_config(config, profile, ...) for a run trained inside a notebook.
# smoke: the profile as is (6 steps on a 48-image 64 px set generated in <output_dir>/shapes_smoke);
# quick: 80 steps of 16 crops on the default shapes dataset (1-2 minutes on 2 CPU cores), validated once
# at the end; full: the full profile as is (the released schedule length).
TRAIN_OVERRIDES = {
    "smoke": {},
    "quick": {"train.num_epochs": 4, "train.pretrain_epochs": 2, "train.max_steps_per_epoch": 20,
              "train.val_every": 0, "train.val_max_images": 20, "misc.verbose": 0},
    "full": {},
}


def default_checkpoint(output_dir) -> Path:
    """Where notebook 02 saves its model: ``<output_dir>/../02_train_weakly_supervised/checkpoint.pth``."""
    return Path(output_dir).resolve().parent / NOTEBOOK_02 / "checkpoint.pth"


def load_model(path, device="auto"):
    """(model in eval mode, config) from a checkpoint holding ``state_dict`` and the full ``config``
    (notebook 02's, a Trainer's), or a Trainer checkpoint ``<run>/checkpoints/*.pth`` without a config
    whose run folder holds ``config.yaml``. Weights load strictly (``load_state_dict_strict``)."""
    from slrnet.checkpoint import load_checkpoint
    from slrnet.config import load_config
    from slrnet.models import build_trained_model
    from slrnet.utils import resolve_device

    path = Path(path).expanduser()
    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {path}: expected a dict with 'state_dict' and 'config' (as notebook 02 and "
                         f"slrnet.train.Trainer save it), got {sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt)}")
    cfg = ckpt.get("config")
    run_config = path.resolve().parent.parent / "config.yaml"    # <run>/checkpoints/x.pth -> <run>/config.yaml
    if cfg is None and path.resolve().parent.name == "checkpoints" and run_config.is_file():
        cfg = load_config(run_config)
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"checkpoint {path}: no 'config' with a 'model' section inside (the full config, as "
                         f"notebook 02 saves it) and no training run's {run_config}; cannot rebuild the model")
    model = build_trained_model(cfg["model"], ckpt["state_dict"], source=str(path))
    return model.to(resolve_device(device)).eval(), cfg


def train_small_model(output_dir, profile: str = "quick", seed: int = 0, device="auto", config=None,
                      data_root=None):
    """Train ``config`` (see ``slrnet.profiles.resolve_config_path``) with ``profile`` and ``TRAIN_OVERRIDES[profile]`` into
    ``<output_dir>/train_run``; ``data_root``: any VOC-layout folder instead of the config's dataset.

    Returns (model in eval mode, config, info {"source": "trained here", "checkpoint", "train_seconds"}).
    """
    from slrnet.train import Trainer

    check_profile(profile)
    out = Path(output_dir).resolve()
    cfg = training_config(config, profile, out, data_root=data_root,
                          overrides={**TRAIN_OVERRIDES[profile], "misc.seed": int(seed), "misc.device": str(device)})
    start = time.perf_counter()
    trainer = Trainer(cfg, run_dir=out / "train_run", overwrite=True)   # this notebook's own run, made again
    trainer.fit()
    seconds = time.perf_counter() - start
    return trainer.model.eval(), cfg, {"source": "trained here", "checkpoint": str(trainer.ckpt_dir / "last.pth"),
                                       "train_seconds": round(seconds, 2)}


def load_or_train(checkpoint, output_dir, profile: str = "quick", seed: int = 0, device="auto", config=None,
                  data_root=None):
    """The notebook's model: ``checkpoint`` if given (it must exist); else notebook 02's next to
    ``output_dir`` if present; else ``train_small_model(output_dir, profile, seed, device, config, data_root)``.

    Returns (model in eval mode, config, info) with info {"source": "checkpoint" / "trained here",
    "checkpoint": the weights' file, "train_seconds"}.
    """
    check_profile(profile)
    if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
        raise FileNotFoundError(f"checkpoint: {checkpoint} does not exist (None uses notebook 02's or trains one)")
    path = Path(checkpoint).expanduser() if checkpoint is not None else default_checkpoint(output_dir)
    if path.is_file():
        model, cfg = load_model(path, device)
        return model, cfg, {"source": "checkpoint", "checkpoint": str(path), "train_seconds": 0.0}
    return train_small_model(output_dir, profile, seed, device, config=config, data_root=data_root)


def evaluation_set(cfg: dict, data_root=None, split: str = "val", num_classes: int | None = None):
    """Full-size images of ``split`` from the config's dataset, or of any VOC-layout ``data_root``; the
    dataset must have the model's ``num_classes`` when given."""
    from slrnet.data import VOCSegmentation, build_dataset

    if data_root is not None:
        dataset = VOCSegmentation(Path(data_root).expanduser(), split, mask_dir=None)
    else:
        dataset = build_dataset(cfg["dataset"], split, train=False)
    if num_classes is not None and dataset.num_classes != num_classes:
        raise ValueError(f"data_root: {dataset.root} has {dataset.num_classes} classes but the model predicts "
                         f"{num_classes}; use a dataset with the model's classes")
    return dataset
