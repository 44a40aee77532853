"""YAML experiment configs with the original SLRNet sections and keys.

A config has five sections, as in the authors' ``experiments/*.yaml``: ``misc``, ``train``, ``dataset``,
``model`` and ``test``. Every key of the original files is accepted with its original meaning; the few
additions (``model.use_cvlr``, ``model.decoder_channels``, ``test.fp_cut``, ...) are documented in
``DEFAULTS`` below. Unknown or mistyped keys are errors that name the key (with a suggestion).

    >>> from slrnet.config import load_config, merge_overrides
    >>> cfg = load_config("configs/shapes_quick.yaml")
    >>> cfg = merge_overrides(cfg, ["train.num_epochs=2", "model.use_cvlr=false"])
    >>> cfg["train"]["batch_size"]
    16
"""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

# Defaults follow experiments/slrnet_voc_wss_v100x2.yaml and METHOD.md. ``None`` means "any type".
DEFAULTS: dict[str, dict[str, Any]] = {
    "misc": {
        "log_dir": "outputs",            # runs are written to <log_dir>/<config name>/<run>
        "log_freq": 100,                 # steps between JSONL log lines
        "verbose": 2,                    # 0 silent, 1 epoch lines, 2 progress bars
        "resume": 0,                     # 1: resume from resume_checkpoint_path (or the run's last.pth)
        "resume_checkpoint_path": "",
        "visualize_samples": "",         # unused placeholder kept for config compatibility
        "seed": 128,
        "device": "auto",                # auto | cpu | cuda | cuda:1 | mps
        "amp": True,                     # mixed precision on CUDA (ignored elsewhere)
        "num_snapshots": 4,              # images in each epoch's visual snapshot
        "deterministic": False,          # torch.use_deterministic_algorithms
    },
    "train": {
        "lr": 0.0005,
        "num_epochs": 30,
        "pretrain_epochs": 5,            # the segmentation loss is on for epoch index > pretrain_epochs
        "num_warmup_steps": 0,           # kept for compatibility (the released recipe uses 0)
        "num_decay_steps": 0,
        "decay_rate": 1,
        "batch_size": 16,
        "num_samples": 0,                # >0: draw this many images per epoch, class-balanced (the COCO recipe)
        "num_workers": 8,
        "weight_decay": 0.0005,
        "loss_coeff": [1.0, 4.0, 4.0, 1.0],   # cls, mask consistency, code consistency, seg
        "lr_multipliers": None,          # [bb weight, bb bias, new weight, new bias]; None = by backbone
        "momentum": 0.9,
        "max_steps_per_epoch": 0,        # 0 = whole epoch; >0 caps steps (smoke runs)
        "val_every": 1,                  # epochs between val mIoU evaluations (0 = only at the end)
        "val_max_images": 0,             # 0 = all val images
        "best_by": "val_miou",           # best.pth by: val_miou (highest) | val_cls_loss (lowest; the authors')
    },
    "dataset": {
        "name": "voc",
        "root": "data/VOC+SBD/",
        "crop_size": 321,
        "scale": [0.9, 1.0],
        "oversample_rate": 1,            # semi-supervised: repeat pixel-labelled images
        "train_list": None,              # default: ImageSets/Segmentation/train_aug.txt or train.txt
        "val_list": None,                # default: ImageSets/Segmentation/val.txt
        "mask_dir": None,                # default: SegmentationClassAug if present, else SegmentationClass
        "labelled_list": None,           # semi-supervised: images with pixel labels
        "labelled_ratio": None,          # ... or a fraction of the train list, drawn with misc.seed
        "generate": None,                # options for the synthetic "shapes" dataset (name: shapes)
    },
    "model": {
        "name": "slrnet",                # slrnet | slrnet_semi | slrnet_semi_wo_cls | slrnet_coco_pseudo
        "backbone": "resnet38",          # resnet38 | resnet101 | tiny
        "pretrained": "",                # ImageNet weights for the backbone ('' = none)
        "num_classes": 21,
        "scale_factor": 0.5,
        "pamr_iter": 10,
        "cutoff_top": 0.6,
        "cutoff_low": 0.2,
        "temperature": 1.0,
        "pamr_dilations": [1, 2, 4, 8, 12, 24],
        "num_iters": 1,                  # CVLR iterations T
        "use_flip": False,               # flip the second view
        "use_cvlr": True,                # False: the predecessor single-stage baseline (one view, no CVLR)
        "decoder_channels": 256,
        "aspp_dilations": [1, 12, 24, 36],
        "backbone_kwargs": {},
        "bg_pow": 3,                     # semi wo_cls: background power before PAMR
        "pos_weight": 1.0,               # slrnet_coco_pseudo: weight of positive labels in the BCE loss ...
        "class_weights": None,           # ... times these per-class weights (K-1 numbers), a model buffer
    },
    "test": {
        "scales": [1, 1.5, 2.0, 0.5, 0.75],
        "flip": True,
        "resize": "pil_bicubic",         # per-scale input: PIL bicubic on the uint8 image | tensor_bilinear
        "fp_cut": 0.3,
        "top_k": 6,
        "bg_pow": 3,
        "use_cls_label": False,
        "apply_crf": False,
    },
}

SECTIONS = tuple(DEFAULTS)


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the key."""


def _suggest(key: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_type(where: str, default: Any, value: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value) if isinstance(default, float) else value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def validate(cfg: dict, source: str = "config") -> dict:
    """Fill defaults and check every key and type; returns a new dict."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: expected a mapping with sections {list(SECTIONS)}, got {type(cfg).__name__}")
    out = copy.deepcopy(DEFAULTS)
    for section, values in cfg.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{source}: unknown section '{section}'{_suggest(section, SECTIONS)}; "
                              f"expected one of {list(SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping, got {values!r}")
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(f"{source}: unknown key '{section}.{key}'"
                                  f"{_suggest(key, DEFAULTS[section])}")
            out[section][key] = _check_type(f"{source}: {section}.{key}", DEFAULTS[section][key], value)
    m, t = out["model"], out["train"]
    if m["num_classes"] < 2:
        raise ConfigError(f"{source}: model.num_classes must be >= 2 (background + one class)")
    if not 0 < m["scale_factor"] <= 1:
        raise ConfigError(f"{source}: model.scale_factor must be in (0, 1], got {m['scale_factor']}")
    if len(t["loss_coeff"]) != 4:
        raise ConfigError(f"{source}: train.loss_coeff must have 4 entries (cls, mask, code, seg)")
    if t["pretrain_epochs"] >= t["num_epochs"] and t["num_epochs"] > 0:
        # Allowed (classification-only training), but it is almost always a mistake.
        pass
    if out["test"]["resize"] not in ("pil_bicubic", "tensor_bilinear"):
        raise ConfigError(f"{source}: test.resize must be 'pil_bicubic' or 'tensor_bilinear', got {out['test']['resize']!r}")
    if m["class_weights"] is not None and len(m["class_weights"]) != m["num_classes"] - 1:
        raise ConfigError(f"{source}: model.class_weights must hold num_classes - 1 = {m['num_classes'] - 1} numbers "
                          f"(one per foreground class), got {len(m['class_weights'])}")
    if t["best_by"] not in ("val_miou", "val_cls_loss"):
        raise ConfigError(f"{source}: train.best_by must be 'val_miou' or 'val_cls_loss', got {t['best_by']!r}")
    if t["num_samples"] < 0:
        raise ConfigError(f"{source}: train.num_samples must be >= 0 (0 = every image once per epoch)")
    if len(out["dataset"]["scale"]) != 2:
        raise ConfigError(f"{source}: dataset.scale must be [low, high]")
    return out


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config, fill defaults, validate, apply ``section.key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    cfg = validate(raw, source=str(path))
    cfg = merge_overrides(cfg, overrides)
    cfg["_source"] = str(path)
    return cfg


def merge_overrides(cfg: dict, overrides: Iterable[str] | dict) -> dict:
    """Apply overrides given as ``["train.lr=0.001", ...]`` or ``{"train.lr": 0.001}``."""
    cfg = copy.deepcopy(cfg)
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for dotted, value in items:
        if "." not in dotted:
            raise ConfigError(f"override '{dotted}': expected section.key=value")
        section, key = dotted.split(".", 1)
        if section not in DEFAULTS:
            raise ConfigError(f"override: unknown section '{section}'{_suggest(section, SECTIONS)}")
        if key not in DEFAULTS[section]:
            raise ConfigError(f"override: unknown key '{section}.{key}'{_suggest(key, DEFAULTS[section])}")
        cfg[section][key] = _check_type(f"override {dotted}", DEFAULTS[section][key], value)
    return cfg


def _split(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}': expected section.key=value")
    key, text = item.split("=", 1)
    return key.strip(), yaml.safe_load(text)


def save_config(cfg: dict, path: str | os.PathLike) -> None:
    from slrnet.utils import atomic_write_bytes

    clean = {s: cfg[s] for s in SECTIONS if s in cfg}
    atomic_write_bytes(path, yaml.safe_dump(clean, sort_keys=False).encode())
