"""Label-efficiency study: how much do a few pixel labels buy? (notebook 03, METHOD.md section 4).

Four settings are trained with one schedule and evaluated by single-scale val mIoU, for one or more
fractions of pixel-labelled training images (the same images, drawn with ``misc.seed``, in every
setting of a fraction):

* ``weak``          — SLRNet from image labels only (``configs/shapes_quick.yaml``); pixel labels unused,
                      so it does not depend on the fraction;
* ``semi_w_cls``    — pixel labels on the fraction, image labels on the rest (``slrnet_semi``);
* ``semi_wo_cls``   — pixel labels on the fraction, the rest unlabelled (``slrnet_semi_wo_cls``);
* ``labelled_only`` — fully supervised on the pixel-labelled part alone (the ``slrnet_semi`` network on a
                      ``SemiSupervisedSplit(..., unlabelled="drop")``: every image it sees has its mask).

Schedules: each semi-supervised variant trains with its own config's schedule. The recipe without image labels
is the longer one, as on VOC (METHOD.md section 4: 40 epochs, 10 pretraining, against 30 and 5; the quick configs
mirror those shares). The labelled-only baseline is the usual supervised-only baseline of semi-supervised
segmentation: the semi run without the images that lack pixel labels. It trains exactly as many SGD steps as that
longer variant, each on as many pixel-labelled images as that variant's batches hold on average (rounded up; its
x7 oversampling puts more of them in a batch than the x3 of the variant with image labels), so neither semi variant
sees its pixel-labelled images more often, or takes more steps, than the baseline it is compared with: they differ
only in the images added to each batch. Its few labelled images are repeated (oversampled) to fill its epochs.
The weak setting, when trained here, follows the variant with image labels.

Loss weights: the three settings with pixel labels all train with those of the variant with image labels
(``LOSS_WEIGHTS_FROM``; 0.5, 2, 2, 0.5, its VOC recipe's), so none takes larger SGD steps than another: scaling
every weight by a factor scales the learning rate. The variant without image labels' own recipe (1, 4, 4, 1, kept
in its config for training it alone) would otherwise step twice as far as the baseline it is compared with.

    >>> from slrnet.semi_study import default_fractions, run_study, study_rows
    >>> from slrnet.viz_semi import plot_label_efficiency
    >>> runs = run_study(default_fractions("smoke"), profile="smoke", output_dir="/tmp/study")  # CPU: side by side
    >>> rows = study_rows(runs)            # one dict per (setting, fraction): val_miou, num_labelled, ...
    >>> fig = plot_label_efficiency(rows)
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slrnet.data import SemiSupervisedSplit, build_dataset, build_semi_dataset
from slrnet.data.voc import VOID, load_mask
from slrnet.profiles import check_profile, training_config
from slrnet.utils import repo_root

SETTINGS = ("weak", "semi_w_cls", "semi_wo_cls", "labelled_only")
SETTING_LABELS = {"weak": "weakly supervised (image labels only)",
                  "semi_w_cls": "semi: pixel labels + image labels on the rest",
                  "semi_wo_cls": "semi: pixel labels + unlabelled rest",
                  "labelled_only": "fully supervised on the labelled part alone"}
SETTING_SHORT = {"weak": "weak", "semi_w_cls": "semi + image labels", "semi_wo_cls": "semi, no image labels",
                 "labelled_only": "labelled only"}
SETTING_CONFIGS = {"weak": "shapes_quick.yaml", "semi_w_cls": "shapes_semi_w_cls_quick.yaml",
                   "semi_wo_cls": "shapes_semi_wo_cls_quick.yaml", "labelled_only": "shapes_semi_w_cls_quick.yaml"}
SCHEDULE_KEYS = ("num_epochs", "pretrain_epochs", "max_steps_per_epoch", "val_every", "val_max_images")
# whose config's schedule (SCHEDULE_KEYS, after the profile) each setting trains with
SCHEDULE_FROM = {"weak": "semi_w_cls", "semi_w_cls": "semi_w_cls", "semi_wo_cls": "semi_wo_cls",
                 "labelled_only": "semi_wo_cls"}
# whose config's loss weights (train.loss_coeff, after the profile) each setting trains with: those with pixel labels
# share the variant with image labels' (see the module docstring); the weak setting, not compared step for step with
# the others, keeps its own
LOSS_WEIGHTS_FROM = {"weak": "weak", "semi_w_cls": "semi_w_cls", "semi_wo_cls": "semi_w_cls",
                     "labelled_only": "semi_w_cls"}
# quick: VOC's share of pixel-labelled images (1464 of 10582 train_aug images), see the semi quick configs
PROFILE_FRACTIONS = {"smoke": [0.1], "quick": [0.138], "full": [0.02, 0.05, 0.138, 0.25]}
# The quick configs cap an epoch's steps to fit notebook 03's time budget; the full profile trains whole epochs.
STUDY_PROFILE_OVERRIDES = {"smoke": {}, "quick": {}, "full": {"train.max_steps_per_epoch": 0}}


def default_fractions(profile: str) -> list[float]:
    """The profile's pixel-label fractions: smoke one tiny run, quick 13.8 %, full 2-25 %."""
    return list(PROFILE_FRACTIONS[check_profile(profile)])


def _check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise ValueError(f"semi study: setting must be one of {SETTINGS}, got {setting!r}")
    return setting


def _check_fraction(setting: str, fraction) -> float | None:
    if setting == "weak":
        return None                                        # image labels only: no fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"semi study: fractions must be numbers in (0, 1] (share of pixel-labelled training "
                         f"images), got {fraction!r} for setting {setting!r}")
    return float(fraction)


def run_name(setting: str, fraction: float | None) -> str:
    return setting if fraction is None else f"{setting}_{fraction:g}"


def study_config(setting: str, fraction: float | None, profile: str, output_dir, configs_dir=None,
                 data_root=None, device: str = "auto", seed: int = 0, overrides: dict | None = None) -> dict:
    """The training config of one setting at one pixel-label fraction (see the module docstring).

    ``overrides`` (``{"section.key": value}``) apply to every setting, after the profile; schedule keys
    among them reach all settings alike, and so does ``train.loss_coeff``. The labelled-only config gets its
    batch size, steps per epoch and oversampling rate from the split of the variant whose schedule it follows
    (:func:`labelled_only_schedule`).
    """
    _check_setting(setting)
    fraction = _check_fraction(setting, fraction)
    configs = Path(configs_dir) if configs_dir is not None else repo_root() / "configs"
    common = {"misc.seed": int(seed), "misc.device": device, **STUDY_PROFILE_OVERRIDES[check_profile(profile)],
              **(overrides or {})}
    schedule_from, weights_from = SCHEDULE_FROM[setting], LOSS_WEIGHTS_FROM[setting]
    lenders = {name: training_config(configs / SETTING_CONFIGS[name], profile, output_dir, data_root, common)
               for name in {schedule_from, weights_from}}
    reference = lenders[schedule_from]
    borrowed = {f"train.{k}": reference["train"][k] for k in SCHEDULE_KEYS}
    borrowed["train.loss_coeff"] = list(lenders[weights_from]["train"]["loss_coeff"])
    cfg = training_config(configs / SETTING_CONFIGS[setting], profile, output_dir, data_root, {**common, **borrowed})
    if setting == "weak":
        cfg["dataset"]["labelled_ratio"] = cfg["dataset"]["labelled_list"] = None   # pixel labels never used
        if cfg["model"]["name"] != "slrnet":
            raise ValueError(f"semi study: {SETTING_CONFIGS['weak']} must train model.name 'slrnet', "
                             f"got {cfg['model']['name']!r}")
    else:
        cfg["dataset"]["labelled_ratio"], cfg["dataset"]["labelled_list"] = fraction, None
    if setting == "labelled_only":
        own = labelled_only_schedule(cfg, reference)
        cfg["train"]["batch_size"], cfg["train"]["max_steps_per_epoch"] = own["batch_size"], own["max_steps_per_epoch"]
        cfg["dataset"]["oversample_rate"] = own["oversample_rate"]
    return cfg


def labelled_only_schedule(cfg: dict, reference: dict) -> dict:
    """The labelled-only baseline's ``batch_size``, ``max_steps_per_epoch`` and ``oversample_rate``.

    ``reference`` is the config of the semi variant it follows (``SCHEDULE_FROM``): as many steps per epoch as
    that variant's epoch (capped as its config caps it), each with as many pixel-labelled images as its batches
    hold on average, rounded up; its few labelled images are repeated to at least a full epoch of images and to
    fill those steps.
    """
    # the split that variant trains on: the same pixel-labelled images, its oversampling
    semi = build_semi_dataset({**cfg["dataset"], "oversample_rate": reference["dataset"]["oversample_rate"]},
                              reference["model"]["name"], seed=int(cfg["misc"]["seed"]))
    base, labelled = semi.dataset, semi.labelled_indices
    t = reference["train"]
    steps = len(semi) // t["batch_size"]
    if t["max_steps_per_epoch"]:
        steps = min(steps, t["max_steps_per_epoch"])
    batch = min(t["batch_size"], math.ceil(t["batch_size"] * semi.num_labelled_items / len(semi)))   # (B * L / N)
    rate = max(1, math.ceil(len(base) / len(labelled)), math.ceil(steps * batch / len(labelled)))
    return {"batch_size": batch, "max_steps_per_epoch": steps, "oversample_rate": rate}


def study_train_set(cfg: dict, setting: str):
    """The training set a setting trains on: plain (weak), the semi split, or the labelled part alone."""
    _check_setting(setting)
    seed = int(cfg["misc"]["seed"])
    if setting == "weak":
        return build_dataset(cfg["dataset"], "train", train=True)
    # labelled-only: its batch, steps and oversampling are in cfg (labelled_only_schedule)
    return build_semi_dataset(cfg["dataset"], cfg["model"]["name"], seed=seed,
                              unlabelled="drop" if setting == "labelled_only" else None)


def check_split(split, max_unlabelled: int | None = None, seed: int = 0) -> dict:
    """Confirm that no pixel label of the unlabelled part reaches a sample (raises AssertionError if one does).

    Loads every labelled item and up to ``max_unlabelled`` unlabelled ones (random, by ``seed``); counts
    the non-void pixels their mask files hold, i.e. what was hidden.
    """
    if not isinstance(split, SemiSupervisedSplit):
        raise TypeError(f"check_split: expected a SemiSupervisedSplit, got {type(split).__name__}")
    base = split.dataset
    position = {}                                          # dataset index -> first item of the split
    for item, index in enumerate(split.index):
        position.setdefault(index, item)
    unlabelled = list(split.unlabelled_indices)
    if max_unlabelled is not None and len(unlabelled) > max_unlabelled:
        unlabelled = sorted(np.random.default_rng(seed).choice(unlabelled, max_unlabelled, replace=False).tolist())
    hidden_pixels = 0
    for index in unlabelled:
        sample = split[position[index]]
        assert not sample["has_mask"] and bool((sample["mask"] == VOID).all()), \
            f"pixel labels of unlabelled image {base.names[index]} leaked into the split"
        if split.unlabelled_mode == "hidden":
            assert not sample["labels"].any(), f"image labels of {base.names[index]} leaked (unlabelled='hidden')"
        if base.mask_paths[index] is not None:
            hidden_pixels += int((load_mask(base.mask_paths[index]) != VOID).sum())
    for index in split.labelled_indices:
        sample = split[position[index]]
        assert sample["has_mask"] and bool((sample["mask"] != VOID).any()), \
            f"labelled image {base.names[index]} lost its pixel labels"
    return {"labelled": len(split.labelled_indices), "oversample_rate": split.oversample_rate,
            "unlabelled": len(split.unlabelled_indices), "unlabelled_mode": split.unlabelled_mode,
            "items_per_epoch": len(split), "checked_unlabelled": len(unlabelled),
            "hidden_labelled_pixels": hidden_pixels, "leaks": 0}


@dataclass
class StudyRun:
    """One setting at one fraction: its summary row and, for a run trained here, its training history,
    config, pixel-labelled images (dataset indices) and trained model (eval mode)."""
    setting: str
    fraction: float | None
    row: dict
    history: list | None = None
    cfg: dict | None = None
    model: torch.nn.Module | None = None
    labelled_indices: list | None = None


def _row(setting: str, fraction: float | None, cfg: dict, train_set, trainer, seconds: float) -> dict:
    final = trainer.history[-1]                            # validate() runs after the last epoch
    return {"setting": setting, "label": SETTING_LABELS[setting], "fraction": fraction,
            "num_labelled": len(train_set.labelled_indices) if isinstance(train_set, SemiSupervisedSplit) else 0,
            "num_train_images": len(getattr(train_set, "dataset", train_set)),
            "unlabelled": getattr(train_set, "unlabelled_mode", None), "items_per_epoch": len(train_set),
            "val_miou": float(final["val_miou"]), "val_pixel_acc": float(final["val_pixel_acc"]),
            "epochs": cfg["train"]["num_epochs"], "steps": trainer.global_step,
            "batch_size": cfg["train"]["batch_size"], "train_seconds": round(seconds, 1),
            "threads": torch.get_num_threads(), "source": "trained"}


def train_setting(setting: str, fraction: float | None, profile: str, output_dir, configs_dir=None,
                  data_root=None, device: str = "auto", seed: int = 0, overrides: dict | None = None) -> StudyRun:
    """Train one setting into ``<output_dir>/runs/<setting>_<fraction>`` and evaluate single-scale val mIoU."""
    from slrnet.train import Trainer

    cfg = study_config(setting, fraction, profile, output_dir, configs_dir, data_root, device, seed, overrides)
    fraction = _check_fraction(setting, fraction)
    train_set = study_train_set(cfg, setting)
    # the study owns its output folder: a rerun replaces its runs
    trainer = Trainer(cfg, Path(output_dir).resolve() / "runs" / run_name(setting, fraction),
                      train_set=train_set, device=device, overwrite=True)
    start = time.time()
    trainer.fit()
    row = _row(setting, fraction, cfg, train_set, trainer, time.time() - start)
    labelled = list(train_set.labelled_indices) if isinstance(train_set, SemiSupervisedSplit) else None
    return StudyRun(setting, fraction, row, trainer.history, trainer.cfg, trainer.model.eval(), labelled)


class _LinePrefix:
    """A text stream that writes to ``stream`` with ``prefix`` at the start of every line."""

    def __init__(self, stream, prefix: str):
        self.stream, self.prefix, self.at_line_start = stream, prefix, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            self.stream.write((self.prefix if self.at_line_start else "") + piece)
            self.at_line_start = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _train_in_worker(setting: str, fraction: float | None, options: dict, threads: int) -> tuple[dict, list | None]:
    """A worker process of :func:`run_study`: train with ``threads`` CPU threads; the model stays on disk.
    The trainer's log lines name their run, since the workers' lines interleave."""
    import contextlib
    import sys

    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(_LinePrefix(sys.stdout, f"[{run_name(setting, fraction)}] ")):
        run = train_setting(setting, fraction, **options)
    return run.row, run.labelled_indices


def load_study_run(setting: str, fraction: float | None, row: dict, output_dir, labelled_indices=None,
                   device="auto") -> StudyRun:
    """A run trained into ``<output_dir>/runs/<setting>_<fraction>`` (by a worker process), read back: the
    model from ``checkpoints/last.pth`` (the weights at the end of training), the history from history.json."""
    from slrnet.notebook_model import load_model

    run_dir = Path(output_dir).resolve() / "runs" / run_name(setting, fraction)
    model, cfg = load_model(run_dir / "checkpoints" / "last.pth", device)
    history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    return StudyRun(setting, fraction, row, history, cfg, model, labelled_indices)


def default_workers(pending: int, device="auto") -> int:
    """How many runs :func:`run_study` trains at once for ``workers="auto"``: on a GPU one after another;
    on a CPU with two or more threads, side by side, one process each with the threads shared out, up to one
    process more than there are threads (on 2 cores, notebook 03's three runs with one thread each finish
    1.2-1.4x sooner than one after another with two threads; benchmarks/semi_study_workers.py)."""
    from slrnet.utils import resolve_device

    threads = torch.get_num_threads()
    if resolve_device(device).type != "cpu" or threads < 2:
        return 1
    return max(1, min(int(pending), threads + 1))


def weak_run_from_metrics(path, profile: str, num_train_images: int, backbone: str,
                          pretrained: str = "") -> StudyRun | None:
    """Notebook 02's weakly supervised result, when its metrics.json exists and matches this study
    (same profile, same number of training images, the same backbone started from the same pretrained
    weights, SLRNet with CVLR); else None."""
    path = Path(path)
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if (metrics.get("profile") != profile or metrics.get("num_train_images") != num_train_images
            or metrics.get("backbone") != backbone or metrics.get("pretrained", "") != pretrained
            or not metrics.get("use_cvlr", False)
            or not isinstance(metrics.get("val_miou"), (int, float))):
        return None
    row = {"setting": "weak", "label": SETTING_LABELS["weak"], "fraction": None, "num_labelled": 0,
           "num_train_images": num_train_images, "unlabelled": None, "items_per_epoch": num_train_images,
           "val_miou": float(metrics["val_miou"]), "val_pixel_acc": None, "epochs": metrics.get("epochs"),
           "steps": None, "batch_size": None, "train_seconds": metrics.get("train_seconds"),
           "source": f"read from {path}"}
    return StudyRun("weak", None, row, None)


def run_study(fractions, settings=SETTINGS, *, profile: str, output_dir, configs_dir=None, data_root=None,
              device: str = "auto", seed: int = 0, overrides: dict | None = None, done: dict | None = None,
              workers="auto") -> dict:
    """Train every (setting, fraction) not already in ``done``; returns ``{(setting, fraction): StudyRun}``.

    The weak setting is trained once (key ``("weak", None)``) whatever the fractions. ``workers``: how many
    runs train at once, each in its own process (``"auto"``: :func:`default_workers`); 1 trains them one
    after another in this process. A run's result does not depend on which runs share the machine with it,
    only on its thread count (floating-point order). The workers are spawned processes: from a script, call
    this under ``if __name__ == "__main__":`` (a notebook needs nothing).
    """
    runs = dict(done or {})
    pending = []
    for setting in settings:
        for fraction in ([None] if _check_setting(setting) == "weak" else fractions):
            key = (setting, _check_fraction(setting, fraction))
            if key not in runs and key not in pending:
                pending.append(key)
    if workers == "auto":
        workers = default_workers(len(pending), device)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"run_study: workers must be 'auto' or an integer >= 1, got {workers!r}")
    options = dict(profile=profile, output_dir=output_dir, configs_dir=configs_dir, data_root=data_root,
                   device=device, seed=seed, overrides=overrides)
    if workers == 1 or len(pending) <= 1:
        for setting, fraction in pending:
            runs[setting, fraction] = train_setting(setting, fraction, **options)
        return runs

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from slrnet.pretrain import resolve_pretrained

    # make the dataset (one for all settings) and any pretrained weights here, before the workers look for them
    cfgs = [study_config(setting, fraction, **options) for setting, fraction in pending]
    build_dataset(cfgs[0]["dataset"], "train", train=True)
    for cfg in cfgs:
        resolve_pretrained(cfg["model"])
    workers = min(workers, len(pending))
    threads = max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {key: pool.submit(_train_in_worker, *key, options, threads) for key in pending}
        for key, future in futures.items():
            row, labelled = future.result()
            runs[key] = load_study_run(*key, row, output_dir, labelled, device)
    return runs


def study_rows(runs: dict) -> list[dict]:
    """Rows ordered by setting (SETTINGS order), then fraction."""
    order = {s: i for i, s in enumerate(SETTINGS)}
    return [r.row for r in sorted(runs.values(), key=lambda r: (order[r.setting], r.fraction or 0.0))]


def summary_metrics(rows: list[dict], fraction: float) -> dict:
    """``<setting>_val_miou`` at ``fraction`` (weak: its single run), for metrics.json."""
    out = {"headline_fraction": fraction}
    for setting in SETTINGS:
        hits = [r for r in rows if r["setting"] == setting and (setting == "weak" or r["fraction"] == fraction)]
        out[f"{setting}_val_miou"] = hits[0]["val_miou"] if hits else None
    return out
