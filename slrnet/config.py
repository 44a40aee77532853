"""YAML experiment configs with the original SLRNet sections and keys.

A config has five sections, as in the authors' ``experiments/*.yaml``: ``misc``, ``train``, ``dataset``,
``model`` and ``test``. Every key of the original files is accepted with its original meaning; the few
additions (``model.use_cvlr``, ``model.decoder_channels``, ``test.fp_cut``, ...) are documented in
``DEFAULTS`` below. Unknown or mistyped keys are errors that name the key (with a suggestion).

A config may build on another: a top-level ``_base_: <file>`` (relative to the config's own folder) names its
base, and the file then states only what differs. ``read_config_file`` resolves the chain (a base may have its
own ``_base_``): section by section, a key the child sets replaces the base's value for that key, whole (a list
or a mapping such as ``model.backbone_kwargs`` replaces the base's wholesale; ``null`` sets the key to null);
the keys it does not set keep the base's values. ``_base_`` itself is dropped, so the resolved config, and the
``config.yaml`` a run saves, is complete and standalone.

    >>> from slrnet.config import load_config, merge_overrides
    >>> cfg = load_config("configs/shapes_quick.yaml")
    >>> cfg = merge_overrides(cfg, ["train.num_epochs=2", "model.use_cvlr=false"])
    >>> cfg["train"]["batch_size"]
    16
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from slrnet.variants import VARIANTS

# Defaults follow experiments/slrnet_voc_wss_v100x2.yaml and METHOD.md. ``None`` means "any type".
DEFAULTS: dict[str, dict[str, Any]] = {
    "misc": {
        "log_dir": "outputs",            # runs are written to <log_dir>/<config name>/<run>
        "log_freq": 100,                 # steps between JSONL log lines
        "verbose": 2,                    # 0 silent, 1 epoch lines, 2 progress bars
        "resume": 0,                     # 1: resume from resume_checkpoint_path (or the run's last.pth)
        "resume_checkpoint_path": "",
        "visualize_samples": "",         # the authors' key; only '' is accepted (it has no effect)
        "seed": 128,
        "device": "auto",                # auto | cpu | cuda | cuda:1 | mps
        "amp": True,                     # mixed precision on CUDA (ignored elsewhere)
        "num_snapshots": 4,              # images in each epoch's visual snapshot
        "deterministic": False,          # torch.use_deterministic_algorithms
        "tensorboard": False,            # write losses, LR, val metrics, factor diagnostics, snapshots (slrnet.tensorboard)
    },
    "train": {
        "lr": 0.0005,
        "num_epochs": 30,
        "pretrain_epochs": 5,            # the segmentation loss is on for epoch index > pretrain_epochs
        "num_warmup_steps": 0,           # the authors' keys, accepted at the released recipes' values only:
        "num_decay_steps": 0,            #   no warm-up, no step decay (lr_policy sets the schedule)
        "decay_rate": 1.0,
        "batch_size": 16,
        "num_samples": 0,                # >0: draw this many images per epoch, class-balanced (the COCO recipe)
        "num_workers": 8,
        "weight_decay": 0.0005,
        "loss_coeff": [1.0, 4.0, 4.0, 1.0],   # cls, mask consistency, code consistency, seg
        "lr_multipliers": None,          # [bb weight, bb bias, new weight, new bias]; None = by backbone
        "momentum": 0.9,
        "lr_policy": "cosine",           # cosine: constant through pretraining, then cosine (SLRNet) | poly: (1-t)^0.9
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
        "val_root": None,                # another root for val (the second stage: pseudo labels in root, val here)
        "labelled_list": None,           # semi-supervised: images with pixel labels
        "labelled_ratio": None,          # ... or a fraction of the train list, drawn with misc.seed
        "generate": None,                # options of an embedded dataset's generator (name: shapes | photos)
        "cache": False,                  # keep decoded images and masks in memory (small datasets, num_workers 0)
    },
    "model": {
        # slrnet | slrnet_semi | slrnet_semi_wo_cls | slrnet_coco_pseudo | slrnet_lid_wide | single_stage
        # | deeplabv3plus (the second stage, slrnet.models.deeplab)
        "name": "slrnet",
        "backbone": "resnet38",          # resnet38 | resnet101 | tiny
        "pretrained": "",                # ImageNet weights for the backbone ('' = none)
        "num_classes": 21,
        "scale_factor": 0.5,
        "pamr_iter": 10,
        "cutoff_top": 0.6,               # pseudo-label thresholds: read by slrnet_semi_wo_cls, slrnet_coco_pseudo
        "cutoff_low": 0.2,               #   and slrnet_lid_wide; the other variants use these fixed values
        "temperature": 1.0,
        "pamr_dilations": [1, 2, 4, 8, 12, 24],
        "num_iters": 1,                  # CVLR iterations T
        "use_flip": False,               # flip the second view
        "use_cvlr": True,                # False: the predecessor single-stage baseline (one view, no CVLR)
        "reconstruction": "used",        # used: heads see ReLU(X + W2 ReLU(Zᵀ D)) (the method) | removed: heads see
                                         # X; the codes still train L_code (the ablation ladder's rungs)
        "decoder_channels": 256,
        "aspp_dilations": [1, 12, 24, 36],
        "backbone_kwargs": {},
        "bg_pow": 3,                     # semi wo_cls: background power before PAMR
        "pos_weight": 1.0,               # slrnet_coco_pseudo: weight of positive labels in the BCE loss ...
        "class_weights": None,           # ... times these per-class weights (K-1 numbers), a model buffer
        "focal_p": 3.0,                  # focal penalty (1 - mean mask)^p log(c + mean mask) of the class scores
        "focal_c": 0.01,
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
BASE_KEY = "_base_"                  # a config's base file (read_config_file)


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the key."""


def _suggest(key: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_NUMBER_LIMIT = 2 ** 63          # numbers reach int64 tensors and seeds: larger ones overflow there


def _as_number(where: str, value: Any, want_float: bool) -> int | float:
    """A number from YAML or an override: YAML 1.1 reads ``5e-4`` (no dot) as a *string*, so numeric strings
    are accepted as people write them ("5e-4", "1E-3", "40_000")."""
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text) if not want_float and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value) or abs(value) >= _NUMBER_LIMIT:
        raise ConfigError(f"{where}: expected a finite number of magnitude below 2**63, got {value!r}")
    if want_float:
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    return value


def _check_type(where: str, default: Any, value: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if isinstance(default, (int, float)):
        return _as_number(where, value, want_float=isinstance(default, float))
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


# Lists whose entries are numbers (checked like scalar numbers, so "5e-4" works inside them too).
_NUMBER_LISTS = {("train", "loss_coeff"), ("train", "lr_multipliers"), ("dataset", "scale"), ("test", "scales"),
                 ("model", "pamr_dilations"), ("model", "aspp_dilations"), ("model", "class_weights")}
_DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def _check_numbers_in_lists(cfg: dict, source: str) -> None:
    for section, key in _NUMBER_LISTS:
        values = cfg[section].get(key)
        if values is None and DEFAULTS[section][key] is not None:
            raise ConfigError(f"{source}: {section}.{key} = null; expected a list of numbers such as "
                              f"{DEFAULTS[section][key]}")
        if values is not None:
            cfg[section][key] = [_as_number(f"{source}: {section}.{key}[{i}]", v, want_float=True)
                                 for i, v in enumerate(values)]


def _check_ranges(out: dict, source: str) -> None:
    """Every range and cross-key rule, for values from files and overrides alike; names the key and the value."""
    import re

    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"{source}: {key} = {out[section][name]!r}; expected {expected}")

    _check_numbers_in_lists(out, source)
    m, t, d, x = out["model"], out["train"], out["dataset"], out["misc"]
    need(m["num_classes"] >= 2, "model.num_classes", "at least 2 (background + one class)")
    need(0 < m["scale_factor"] <= 1, "model.scale_factor", "a number in (0, 1]")
    need(len(t["loss_coeff"]) == 4, "train.loss_coeff", "4 numbers (cls, mask, code, seg)")
    need(all(c >= 0 for c in t["loss_coeff"]), "train.loss_coeff", "non-negative weights")
    need(t["num_epochs"] >= 1, "train.num_epochs", "at least 1")
    need(t["pretrain_epochs"] >= 0, "train.pretrain_epochs", "0 or more")
    need(t["batch_size"] >= 1, "train.batch_size", "at least 1")
    need(t["max_steps_per_epoch"] >= 0, "train.max_steps_per_epoch", "0 (whole epoch) or more")
    need(t["num_samples"] >= 0, "train.num_samples", "0 (every image once per epoch) or more")
    need(t["num_workers"] >= 0, "train.num_workers", "0 or more")
    need(t["val_every"] >= 0 and t["val_max_images"] >= 0, "train.val_every", "0 or more (and val_max_images too)")
    need(t["lr"] > 0, "train.lr", "a positive learning rate")
    need(t["weight_decay"] >= 0, "train.weight_decay", "0 or more")
    need(t["best_by"] in ("val_miou", "val_cls_loss"), "train.best_by", "'val_miou' or 'val_cls_loss'")
    # keys of the authors' configs that no recipe of theirs sets: accepted at their inert values only, so a
    # value that would be silently ignored is refused instead
    need(t["num_warmup_steps"] == 0, "train.num_warmup_steps",
         "0: the schedule (train.lr_policy) has no warm-up")
    need(t["num_decay_steps"] == 0 and t["decay_rate"] == 1, "train.num_decay_steps",
         "0 with train.decay_rate 1: step decay is not part of the schedule (train.lr_policy)")
    need(x["visualize_samples"] in ("", None), "misc.visualize_samples",
         "'' (it has no effect; misc.num_snapshots sets the images of each epoch's snapshot)")
    need(m["name"] in VARIANTS, "model.name", f"one of {sorted(VARIANTS)}")
    read = VARIANTS[m["name"]].model_keys
    for key in DEFAULTS["model"] if read is not None else ():
        # a key this model does not read is accepted at its default only, so no setting is silently ignored
        if key not in read and m[key] != DEFAULTS["model"][key]:
            need(False, f"model.{key}", f"{DEFAULTS['model'][key]!r} (the default): {m['name']} does not read it")
    if not VARIANTS[m["name"]].reads_cutoffs:
        # these variants threshold with the released Net's fixed values (losses.pseudo_labels defaults)
        readers = sorted(v.name for v in VARIANTS.values() if v.reads_cutoffs)
        need(m["cutoff_top"] == 0.6 and m["cutoff_low"] == 0.2, "model.cutoff_top",
             f"0.6 with model.cutoff_low 0.2 (got cutoff_low {m['cutoff_low']!r}): the {m['name']} variant uses "
             f"the released network's fixed pseudo-label thresholds; only {', '.join(readers)} read these keys")
    need(m["reconstruction"] in ("used", "removed"), "model.reconstruction",
         "'used' (the method) or 'removed' (the heads see the features themselves; codes still computed)")
    need(m["use_cvlr"] or m["reconstruction"] == "used", "model.reconstruction",
         "'used' with model.use_cvlr false (the single-view network has no low-rank module)")
    need(t["lr_policy"] in ("cosine", "poly"), "train.lr_policy",
         "cosine (SLRNet's: constant through the pretraining epochs, then cosine) or poly ((1 - step/steps)^0.9 "
         "over all steps, mmsegmentation's)")
    need(t["lr_multipliers"] is None or len(t["lr_multipliers"]) == 4, "train.lr_multipliers",
         "4 numbers [backbone weights, backbone biases, new weights, new biases]")
    need(len(d["scale"]) == 2 and 0 < d["scale"][0] <= d["scale"][1] <= 1, "dataset.scale",
         "[low, high] area fractions with 0 < low <= high <= 1")
    # the crop must span 2x2 cells of the stride-8 deep map, and the second view (crop * scale_factor) one
    min_crop = max(16, math.ceil(8 / m["scale_factor"]))
    need(d["crop_size"] >= min_crop, "dataset.crop_size",
         f"at least {min_crop} px (the network's deep map has stride 8, and the second view is "
         f"model.scale_factor = {m['scale_factor']} times the crop)")
    need(d["oversample_rate"] >= 1, "dataset.oversample_rate", "at least 1")
    need(m["class_weights"] is None or len(m["class_weights"]) == m["num_classes"] - 1, "model.class_weights",
         f"num_classes - 1 = {m['num_classes'] - 1} numbers (one per foreground class)")
    need(m["pamr_iter"] >= 0 and len(m["pamr_dilations"]) >= 1, "model.pamr_iter",
         "0 or more iterations with at least one dilation")
    need(out["test"]["resize"] in ("pil_bicubic", "tensor_bilinear"), "test.resize",
         "'pil_bicubic' or 'tensor_bilinear'")
    need(len(out["test"]["scales"]) >= 1 and all(s > 0 for s in out["test"]["scales"]), "test.scales",
         "one or more positive scales")
    need(0 <= out["test"]["fp_cut"] < 1, "test.fp_cut", "a probability in [0, 1)")
    need(bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(x["device"]))), "misc.device", _DEVICE_HELP)
    need(x["num_snapshots"] >= 0, "misc.num_snapshots", "0 or more")
    _check_more_ranges(need, out)


def _check_more_ranges(need, out: dict) -> None:
    """The ranges of the remaining numbers: each must give a working run (``misc.log_freq = 0`` divided by zero,
    a zero temperature or ``test.bg_pow`` made every probability NaN or 1)."""
    m, t, x, test = out["model"], out["train"], out["misc"], out["test"]
    need(x["log_freq"] >= 1, "misc.log_freq", "at least 1 (steps between log lines)")
    need(x["verbose"] in (0, 1, 2), "misc.verbose", "0 (silent), 1 (epoch lines) or 2 (progress bars)")
    need(x["seed"] >= 0, "misc.seed", "0 or more")
    need(0 <= t["momentum"] < 1, "train.momentum", "a number in [0, 1)")
    need(m["temperature"] > 0, "model.temperature", "a positive number")
    need(m["num_iters"] >= 1, "model.num_iters", "at least 1 CVLR iteration")
    need(m["decoder_channels"] >= 1, "model.decoder_channels", "at least 1")
    need(all(v >= 1 for v in m["pamr_dilations"]), "model.pamr_dilations", "dilations of at least 1")
    need(all(v >= 1 for v in m["aspp_dilations"]), "model.aspp_dilations", "dilations of at least 1")
    need(0 <= m["cutoff_low"] <= m["cutoff_top"] <= 1, "model.cutoff_low", "0 <= cutoff_low <= cutoff_top <= 1")
    need(m["bg_pow"] > 0, "model.bg_pow", "a positive power")
    need(m["pos_weight"] > 0, "model.pos_weight", "a positive weight")
    need(m["class_weights"] is None or all(w >= 0 for w in m["class_weights"]), "model.class_weights",
         "non-negative weights")
    need(m["focal_p"] >= 0 and m["focal_c"] > 0, "model.focal_p", "focal_p >= 0 with focal_c > 0")
    need(test["bg_pow"] > 0, "test.bg_pow", "a positive power")
    need(t["lr_multipliers"] is None or all(v >= 0 for v in t["lr_multipliers"]), "train.lr_multipliers",
         "non-negative multipliers")


def _check_names(cfg: dict, source: str) -> None:
    """Every section and key of ``cfg`` is known and every section is a mapping (or empty)."""
    for section, values in cfg.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{source}: unknown section '{section}'{_suggest(section, SECTIONS)}; "
                              f"expected one of {list(SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping, got {values!r}")
        for key in values:
            if key not in DEFAULTS[section]:
                raise ConfigError(f"{source}: unknown key '{section}.{key}'"
                                  f"{_suggest(key, DEFAULTS[section])}")


def validate(cfg: dict, source: str = "config") -> dict:
    """Fill defaults and check every key, type and range; returns a new dict."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: expected a mapping with sections {list(SECTIONS)}, got {type(cfg).__name__}")
    if BASE_KEY in cfg:
        raise ConfigError(f"{source}: '{BASE_KEY}' is resolved by read_config_file / load_config, not validate")
    _check_names(cfg, source)
    out = copy.deepcopy(DEFAULTS)
    for section, values in cfg.items():
        for key, value in (values or {}).items():
            out[section][key] = _check_type(f"{source}: {section}.{key}", DEFAULTS[section][key], value)
    _check_ranges(out, source)
    return out


def read_config_file(path: str | os.PathLike) -> dict:
    """The config file's sections with its ``_base_`` chain resolved and ``_base_`` dropped: what the file
    means, before defaults and validation (``load_config`` validates it). Every file of the chain is checked
    for unknown sections and keys, so the error names the file that has the typo; a missing base or a cycle
    is a one-line ``ConfigError`` naming the file that refers to it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return _resolve(path, ())


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python objects) that refuses a key given twice in one mapping: plain YAML keeps the
    last one silently, so a second ``train:`` section would replace the first."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise ConfigError(f"line {line}: the key {key!r} is given twice (first on line {seen[key]}); "
                                      f"YAML would keep only the last, so merge the two")
                seen[key] = line
            except TypeError:                    # an unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)


def _read_text(path: Path) -> str:
    """The file's text as UTF-8 (a byte-order mark allowed); another encoding is named with the file."""
    from slrnet.paths import read_utf8

    return read_utf8(path, ConfigError, "config")


def _read_one(path: Path) -> dict:
    """One config file: strict YAML (duplicate keys refused), UTF-8, not empty, a mapping."""
    text = _read_text(path)
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if raw is None:
        raise ConfigError(f"{path} is empty; expected a mapping with sections {list(SECTIONS)} (write '{{}}' "
                          f"for every default)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {list(SECTIONS)}, got {type(raw).__name__}")
    return raw


def _resolve(path: Path, chain: tuple[Path, ...]) -> dict:
    raw = _read_one(path)
    has_base = BASE_KEY in raw
    base = raw.pop(BASE_KEY, None)
    _check_names(raw, str(path))
    if not has_base:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: {BASE_KEY} = {base!r}; expected the base config's file name, relative to "
                          f"{path.parent}")
    base_path = path.parent / base
    here = chain + (path,)
    if not base_path.is_file():
        raise ConfigError(f"{path}: {BASE_KEY} {base!r} not found (no file {base_path})")
    seen = [p.resolve() for p in here]
    if base_path.resolve() in seen:
        loop = " -> ".join(p.name for p in here[seen.index(base_path.resolve()):]) + f" -> {base_path.name}"
        raise ConfigError(f"{path}: {BASE_KEY} {base!r} makes a cycle: {loop}")
    return _merge(_resolve(base_path, here), raw)


def _merge(base: dict, child: dict) -> dict:
    """``base`` with ``child``'s keys set, section by section; a key's value (list, mapping, null) is replaced
    whole; an empty child section changes nothing."""
    out = copy.deepcopy(base)
    for section, values in child.items():
        if values is None:
            out.setdefault(section, None)
        else:
            out[section] = {**(out.get(section) or {}), **copy.deepcopy(values)}
    return out


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config (its ``_base_`` chain resolved: ``read_config_file``), fill defaults, validate,
    apply ``section.key=value`` overrides."""
    path = Path(path)
    cfg = validate(read_config_file(path), source=str(path))
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
    _check_ranges(cfg, "override")          # the same rules as for values read from a file
    return cfg


def _split(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}': expected section.key=value")
    key, text = item.split("=", 1)
    try:
        return key.strip(), yaml.load(text, Loader=_StrictLoader)
    except (ConfigError, yaml.YAMLError) as e:
        raise ConfigError(f"override '{item}': not a valid YAML value ({' '.join(str(e).split())})") from None


def save_config(cfg: dict, path: str | os.PathLike) -> None:
    from slrnet.utils import atomic_write_bytes

    clean = {s: cfg[s] for s in SECTIONS if s in cfg}
    atomic_write_bytes(path, yaml.safe_dump(clean, sort_keys=False).encode())
