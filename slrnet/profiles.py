"""Run profiles: ``smoke`` (the tests), ``quick`` (``make run``), ``full`` (a real run).

What a profile means is written once, in ``configs/profiles.yaml``: an overlay onto any training config,
per-model overlays, the overlay of the short run notebooks 04 / 05 train when notebook 02 left no model,
the sizes of the notebooks' analyses, and the suite's cell timeout. This module reads that file; notebooks
pass a config path and a profile name and get everything else from here.

    >>> from slrnet.profiles import training_config, analysis_settings
    >>> cfg = training_config("configs/shapes_quick.yaml", "smoke", output_dir="/tmp/nb02")
    >>> cfg["train"]["max_steps_per_epoch"], cfg["dataset"]["root"]
    (3, '/tmp/nb02/shapes_smoke')
    >>> analysis_settings("quick", "factors")
    {'num_images': 4, 'objective_iters': 10}
    >>> dataset_root("smoke", "/tmp/nb00")      # the profile's dataset (generated on first use)
    PosixPath('/tmp/nb00/shapes_smoke')
    >>> dataset_config("photos", "semi_w_cls_quick")   # the notebooks' `dataset` parameter picks the configs
    PosixPath('.../configs/photos_semi_w_cls_quick.yaml')

The embedded datasets (``EMBEDDED_DATASETS``: "shapes", "photos") have one config per experiment each,
``configs/<dataset>_<experiment>.yaml``; the profile's ``dataset.root`` / ``dataset.generate`` overlay applies to
them ("{dataset}" in it is the config's dataset name) and leaves any other dataset alone.
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import yaml

from slrnet.config import load_config, merge_overrides

PROFILES = ("smoke", "quick", "full")
EMBEDDED_DATASETS = ("shapes", "photos")
EMBEDDED_ONLY_KEYS = ("dataset.root", "dataset.generate")
PROFILE_KEYS = {"config", "config_by_model", "short_run", "analysis", "cell_timeout"}


def profiles_file() -> Path:
    from slrnet.utils import repo_root

    return repo_root() / "configs" / "profiles.yaml"


@functools.lru_cache(maxsize=None)
def _read(path: str) -> dict:
    table = yaml.safe_load(Path(path).read_text())
    if not isinstance(table, dict) or set(table) != set(PROFILES):
        raise ValueError(f"{path}: expected the profiles {PROFILES} at the top level, got "
                         f"{sorted(table) if isinstance(table, dict) else type(table).__name__}")
    for name, spec in table.items():
        unknown = set(spec) - PROFILE_KEYS
        if unknown or "config" not in spec or "analysis" not in spec:
            raise ValueError(f"{path}: profile {name!r} must have 'config' and 'analysis' (and may have "
                             f"{sorted(PROFILE_KEYS - {'config', 'analysis'})}); unknown {sorted(unknown)}")
    return table


def profile_spec(profile: str) -> dict:
    """The profile's entry of ``configs/profiles.yaml`` (a copy)."""
    return copy.deepcopy(_read(str(profiles_file()))[check_profile(profile)])


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {PROFILES}, got {profile!r}")
    return profile


def analysis_settings(profile: str, analysis: str) -> dict:
    """How much one notebook analysis computes under ``profile`` (the ``analysis.<name>`` entry)."""
    table = profile_spec(profile)["analysis"]
    if analysis not in table:
        raise KeyError(f"analysis: {analysis!r} is not in profile {profile!r} of {profiles_file()}; "
                       f"expected one of {sorted(table)}")
    return table[analysis]


def cell_timeout(profile: str) -> int:
    return int(profile_spec(profile)["cell_timeout"])


def check_dataset(dataset: str) -> str:
    if dataset not in EMBEDDED_DATASETS:
        raise ValueError(f"dataset: expected one of the embedded datasets {EMBEDDED_DATASETS}, got {dataset!r} "
                         f"(any other VOC-layout folder: pass data_root)")
    return dataset


def dataset_config(dataset: str, experiment: str = "quick") -> Path:
    """``<repo>/configs/<dataset>_<experiment>.yaml`` of an embedded dataset (it must exist)."""
    from slrnet.utils import repo_root

    path = repo_root() / "configs" / f"{check_dataset(dataset)}_{experiment}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"config: {path} not found; the {dataset} dataset has "
                                f"{sorted(p.stem for p in path.parent.glob(dataset + '_*.yaml'))}")
    return path


def _overlay(values: dict, output_dir, dataset: str = "shapes") -> dict:
    """Fill "{output_dir}" and "{dataset}" into string values."""
    out = {}
    for key, value in values.items():
        if isinstance(value, str) and "{output_dir}" in value:
            if output_dir is None:
                raise ValueError(f"profile overlay {key}: needs an output folder ({value!r})")
            value = value.replace("{output_dir}", str(Path(output_dir).resolve()))
        if isinstance(value, str):
            value = value.replace("{dataset}", dataset)
        out[key] = value
    return out


def dataset_root(profile: str, output_dir, data_root=None, dataset: str = "shapes") -> Path:
    """The folder a notebook shows when it trains nothing: ``data_root`` when given, else the profile's
    copy of the embedded ``dataset`` (the one its training configs would use), generated on first use."""
    from slrnet.data.build import EMBEDDED, resolve_data_root

    if data_root is not None:
        return Path(data_root).expanduser()
    cfg = load_config(dataset_config(dataset))
    overlay = _overlay(profile_spec(profile)["config"], output_dir, dataset)
    root = overlay.get("dataset.root", cfg["dataset"]["root"])
    return EMBEDDED[dataset](resolve_data_root(root) if root else None,
                             **(overlay.get("dataset.generate", cfg["dataset"]["generate"]) or {}))


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


def training_config(config: str | os.PathLike | None, profile: str, output_dir: str | os.PathLike,
                    data_root: str | os.PathLike | None = None, overrides: dict | None = None,
                    short_run: bool = False) -> dict:
    """The one function that turns (config, profile) into the config a run trains with.

    Order: ``config`` (see ``resolve_config_path``), the profile's overlay, its overlay for the config's
    ``model.name``, the short-run overlay when ``short_run``, ``data_root`` (any VOC-layout folder: it
    replaces the dataset and sets ``model.num_classes`` from its classes), then ``overrides``
    (``{"section.key": value}``; ``None`` values are skipped so notebook parameters left at ``None`` keep
    the config's value). ``misc.log_dir`` is ``output_dir``.
    """
    spec = profile_spec(profile)
    cfg = load_config(resolve_config_path(config))
    overlay = spec["config"]
    name = cfg["dataset"]["name"]
    if name not in EMBEDDED_DATASETS:
        # the profile's generated dataset stands in for an embedded dataset only; other datasets keep theirs
        overlay = {k: v for k, v in overlay.items() if k not in EMBEDDED_ONLY_KEYS}
    cfg = merge_overrides(cfg, _overlay(overlay, output_dir, name))
    by_model = (spec.get("config_by_model") or {}).get(cfg["model"]["name"])
    if by_model:
        cfg = merge_overrides(cfg, _overlay(by_model, output_dir, name))
    if short_run:
        cfg = merge_overrides(cfg, _overlay(spec.get("short_run") or {}, output_dir, name))
    if data_root is not None:
        from slrnet.data import VOCSegmentation

        root = Path(data_root).expanduser().resolve()
        classes = VOCSegmentation(root, "val").class_names
        cfg = merge_overrides(cfg, {"dataset.name": "voc", "dataset.root": str(root), "dataset.generate": None,
                                    "model.num_classes": len(classes)})
    cfg = merge_overrides(cfg, {k: v for k, v in (overrides or {}).items() if v is not None})
    cfg["misc"]["log_dir"] = str(Path(output_dir).resolve())
    return cfg
