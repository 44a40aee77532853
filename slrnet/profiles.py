"""Run profiles shared by the notebooks: ``smoke`` (tests), ``quick`` (``make run``), ``full`` (a real run).

A profile is a set of config overrides on top of a YAML config; the notebooks call
:func:`training_config` so that what a profile means lives in one place, not in six notebooks.

    >>> from slrnet.profiles import training_config
    >>> cfg = training_config("configs/shapes_quick.yaml", "smoke", output_dir="/tmp/nb02")
    >>> cfg["train"]["max_steps_per_epoch"], cfg["dataset"]["root"]
    (3, '/tmp/nb02/shapes_smoke')

* smoke — a tiny generated dataset inside the output folder, 2 epochs of 3 steps, the backbone from
  random weights (no pretraining): checks that everything runs, numbers are meaningless.
* quick — the config as written (the teaching profile: minutes on 2 CPU cores; the tiny backbone's
  classification-pretrained weights are made once, ~40 s, see ``slrnet.pretrain``).
* full  — the released schedule length (30 epochs, 5 pretraining; 40 / 10 for semi without image
  labels) on full-size images.
"""
from __future__ import annotations

import os
from pathlib import Path

from slrnet.config import load_config, merge_overrides

PROFILES = ("smoke", "quick", "full")

SMOKE_DATASET = {"num_train": 48, "num_val": 12, "image_size": 64}

PROFILE_OVERRIDES = {
    "smoke": {"train.num_epochs": 2, "train.pretrain_epochs": 0, "train.max_steps_per_epoch": 3,
              "train.batch_size": 4, "train.val_max_images": 12, "dataset.crop_size": 48,
              "misc.verbose": 0, "misc.num_snapshots": 2, "dataset.generate": SMOKE_DATASET,
              "model.pretrained": ""},
    "quick": {},
    "full": {"train.num_epochs": 30, "train.pretrain_epochs": 5},
}
FULL_WO_CLS_SCHEDULE = {"train.num_epochs": 40, "train.pretrain_epochs": 10}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {PROFILES}, got {profile!r}")
    return profile


def resolve_config_path(config=None) -> Path:
    """``config`` as given when it exists (or is absolute); a relative path as the notebooks write it
    ("../configs/x.yaml") also resolves from ``<repo>/notebooks``, so runs started from elsewhere find it.
    None: ``<repo>/configs/shapes_quick.yaml``."""
    from slrnet.utils import repo_root

    if config is None:
        return repo_root() / "configs" / "shapes_quick.yaml"
    path = Path(config).expanduser()
    if path.is_file() or path.is_absolute():
        return path
    from_notebooks = repo_root() / "notebooks" / path
    if from_notebooks.is_file():
        return from_notebooks.resolve()
    raise FileNotFoundError(f"config: {config} not found (looked in {Path.cwd()} and {repo_root() / 'notebooks'})")


def training_config(config: str | os.PathLike, profile: str, output_dir: str | os.PathLike,
                    data_root: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """Load ``config`` (see ``resolve_config_path``), apply the profile, point it at ``data_root`` (any
    VOC-layout folder) if given.

    ``overrides`` (``{"section.key": value}``) come last; ``None`` values are skipped so notebook
    parameters left at ``None`` keep the config's value.
    """
    check_profile(profile)
    cfg = load_config(resolve_config_path(config))
    cfg = merge_overrides(cfg, PROFILE_OVERRIDES[profile])
    if profile == "full" and cfg["model"]["name"] == "slrnet_semi_wo_cls":
        cfg = merge_overrides(cfg, FULL_WO_CLS_SCHEDULE)   # METHOD.md section 4: 40 epochs, 10 pretraining
    if data_root is not None:
        from slrnet.data import VOCSegmentation

        root = Path(data_root).expanduser().resolve()
        classes = VOCSegmentation(root, "val").class_names
        cfg = merge_overrides(cfg, {"dataset.name": "voc", "dataset.root": str(root), "dataset.generate": None,
                                    "model.num_classes": len(classes)})
    elif profile == "smoke" and cfg["dataset"]["name"] == "shapes":
        cfg = merge_overrides(cfg, {"dataset.root": str(Path(output_dir).resolve() / "shapes_smoke")})
    cfg = merge_overrides(cfg, {k: v for k, v in (overrides or {}).items() if v is not None})
    cfg["misc"]["log_dir"] = str(Path(output_dir).resolve())
    return cfg
