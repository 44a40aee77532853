"""Label-efficiency study: how much do a few pixel labels buy? (notebook 03, METHOD.md section 4).

Four settings, each trained with **the same schedule** (epochs, steps per epoch, batch size: the budget of
the profile's ``analysis.label_efficiency.config`` overlay on the variant with image labels) and evaluated by
single-scale val mIoU, for several fractions of pixel-labelled training images (the same images, drawn with
``misc.seed``, in every setting of a fraction):

* ``weak``          — SLRNet from image labels only (``configs/<dataset>_quick.yaml``); pixel labels unused,
                      so it does not depend on the fraction;
* ``semi_w_cls``    — pixel labels on the fraction, image labels on the rest (``slrnet_semi``);
* ``semi_wo_cls``   — pixel labels on the fraction, the rest unlabelled (``slrnet_semi_wo_cls``);
* ``labelled_only`` — fully supervised on the pixel-labelled part alone (the ``slrnet_semi`` network on a
                      ``SemiSupervisedSplit(..., unlabelled="drop")``: every image it sees has its mask).

The labelled-only baseline is the usual supervised-only baseline of semi-supervised segmentation: the semi run
without the images that lack pixel labels. Its batches hold as many pixel-labelled images as those of the semi
variant with the most of them (``LABELLED_ONLY_FOLLOWS``: x7 oversampling), rounded up, and its few labelled
images are repeated to fill its steps, so no semi variant sees its pixel-labelled images more often than the
baseline it is compared with: they differ only in the images added to each batch.

Loss weights: the three settings with pixel labels train with those of the variant with image labels
(``LOSS_WEIGHTS_FROM``; 0.5, 2, 2, 0.5, its VOC recipe's), so none takes larger SGD steps than another: scaling
every weight by a factor scales the learning rate.

    >>> from slrnet.analysis.label_efficiency import run_study, study_rows
    >>> from slrnet.profiles import analysis_settings
    >>> fractions = analysis_settings("smoke", "label_efficiency")["fractions"]
    >>> runs = run_study(fractions, profile="smoke", output_dir="/tmp/study")   # CPU: side by side
    >>> rows = study_rows(runs)            # one dict per (setting, fraction): val_miou, num_labelled, steps, ...
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
from slrnet.data.files import VOID, load_mask
from slrnet.profiles import analysis_settings, dataset_config, training_config

SETTINGS = ("weak", "semi_w_cls", "semi_wo_cls", "labelled_only")
SETTING_LABELS = {"weak": "weakly supervised (image labels only)",
                  "semi_w_cls": "semi: pixel labels + image labels on the rest",
                  "semi_wo_cls": "semi: pixel labels + unlabelled rest",
                  "labelled_only": "fully supervised on the labelled part alone"}
SETTING_SHORT = {"weak": "weak", "semi_w_cls": "semi + image labels", "semi_wo_cls": "semi, no image labels",
                 "labelled_only": "labelled only"}
# each setting's config, configs/<dataset>_<experiment>.yaml (slrnet.profiles.dataset_config)
SETTING_EXPERIMENTS = {"weak": "quick", "semi_w_cls": "semi_w_cls_quick", "semi_wo_cls": "semi_wo_cls_quick",
                       "labelled_only": "semi_w_cls_quick"}
# the settings share this config's schedule (after the profile and the study's overlay)
SCHEDULE_FROM = "semi_w_cls"
SCHEDULE_KEYS = ("num_epochs", "pretrain_epochs", "max_steps_per_epoch", "batch_size", "val_every", "val_max_images")
# whose split the labelled-only baseline takes its pixel-labelled images per batch from (the most of them)
LABELLED_ONLY_FOLLOWS = "semi_wo_cls"
# whose config's loss weights (train.loss_coeff) each setting trains with: those with pixel labels share the
# variant with image labels'; the weak setting keeps its own recipe
LOSS_WEIGHTS_FROM = {"weak": "weak", "semi_w_cls": "semi_w_cls", "semi_wo_cls": "semi_w_cls",
                     "labelled_only": "semi_w_cls"}


def default_fractions(profile: str) -> list[float]:
    """The pixel-label fractions notebook 03 trains (``configs/profiles.yaml``: analysis.label_efficiency.fractions)."""
    return [float(f) for f in analysis_settings(profile, "label_efficiency")["fractions"]]


def seed_study_fractions(profile: str) -> list[float]:
    """The fractions of the several-seed study, the label-efficiency curve (``experiments/label_efficiency_seeds.py``;
    analysis.label_efficiency.seed_study_fractions)."""
    return [float(f) for f in analysis_settings(profile, "label_efficiency")["seed_study_fractions"]]


def _check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise ValueError(f"label-efficiency study: setting must be one of {SETTINGS}, got {setting!r}")
    return setting


def _check_fraction(setting: str, fraction) -> float | None:
    if setting == "weak":
        return None                                        # image labels only: no fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"label-efficiency study: fractions must be numbers in (0, 1] (share of pixel-labelled training "
                         f"images), got {fraction!r} for setting {setting!r}")
    return float(fraction)


def run_name(setting: str, fraction: float | None) -> str:
    return setting if fraction is None else f"{setting}_{fraction:g}"


def study_config(setting: str, fraction: float | None, profile: str, output_dir, dataset: str = "shapes",
                 data_root=None, device: str = "auto", seed: int = 0, overrides: dict | None = None) -> dict:
    """The training config of one setting at one pixel-label fraction (see the module docstring).

    ``overrides`` (``{"section.key": value}``) apply to every setting, after the profile; schedule keys
    among them reach all settings alike, and so does ``train.loss_coeff``. The labelled-only config gets its
    batch size, steps per epoch and oversampling rate from the split of the variant whose schedule it follows
    (:func:`labelled_only_schedule`).
    """
    _check_setting(setting)
    fraction = _check_fraction(setting, fraction)
    study = analysis_settings(profile, "label_efficiency").get("config") or {}
    common = {"misc.seed": int(seed), "misc.device": device, **study, **(overrides or {})}
    lenders = {name: training_config(dataset_config(dataset, SETTING_EXPERIMENTS[name]), profile, output_dir,
                                     data_root, common)
               for name in {SCHEDULE_FROM, LOSS_WEIGHTS_FROM[setting], LABELLED_ONLY_FOLLOWS}}
    borrowed = {f"train.{k}": lenders[SCHEDULE_FROM]["train"][k] for k in SCHEDULE_KEYS}
    borrowed["train.loss_coeff"] = list(lenders[LOSS_WEIGHTS_FROM[setting]]["train"]["loss_coeff"])
    cfg = training_config(dataset_config(dataset, SETTING_EXPERIMENTS[setting]), profile, output_dir, data_root,
                          {**common, **borrowed})
    if setting == "weak":
        cfg["dataset"]["labelled_ratio"] = cfg["dataset"]["labelled_list"] = None   # pixel labels never used
        if cfg["model"]["name"] != "slrnet":
            raise ValueError(f"label-efficiency study: {dataset_config(dataset, SETTING_EXPERIMENTS['weak']).name} "
                             f"must train model.name 'slrnet', "
                             f"got {cfg['model']['name']!r}")
    else:
        cfg["dataset"]["labelled_ratio"], cfg["dataset"]["labelled_list"] = fraction, None
    cfg["train"]["max_steps_per_epoch"] = study_steps_per_epoch(cfg)
    if setting == "labelled_only":
        own = labelled_only_schedule(cfg, lenders[LABELLED_ONLY_FOLLOWS])
        cfg["train"]["batch_size"] = own["batch_size"]
        cfg["dataset"]["oversample_rate"] = own["oversample_rate"]
    return cfg


def study_steps_per_epoch(cfg: dict) -> int:
    """The steps per epoch every setting trains: one pass over the training images (batch ``train.batch_size``),
    capped by the study's ``train.max_steps_per_epoch``. The semi splits hold every training image plus repeats
    of the pixel-labelled ones, so each of their epochs has at least this many batches; with the same epochs and
    batch size every setting takes the same number of SGD steps."""
    batch = int(cfg["train"]["batch_size"])
    images = len(build_dataset({**cfg["dataset"], "labelled_ratio": None, "labelled_list": None}, "train",
                               train=False))
    steps = images // batch
    cap = int(cfg["train"]["max_steps_per_epoch"])
    steps = min(steps, cap) if cap else steps
    if steps < 1:
        raise ValueError(f"label-efficiency study: {images} training images do not fill one batch of {batch}")
    return steps


def labelled_only_schedule(cfg: dict, reference: dict) -> dict:
    """The labelled-only baseline's ``batch_size`` and ``oversample_rate``.

    ``reference`` is the config of the semi variant whose batches it matches (``LABELLED_ONLY_FOLLOWS``): each
    step holds as many pixel-labelled images as that variant's batches hold on average, rounded up; its few
    labelled images are repeated to at least a full epoch of images and to fill the steps of ``cfg``.
    """
    # the split that variant trains on: the same pixel-labelled images, its oversampling
    semi = build_semi_dataset({**cfg["dataset"], "oversample_rate": reference["dataset"]["oversample_rate"]},
                              reference["model"]["name"], seed=int(cfg["misc"]["seed"]))
    base, labelled = semi.dataset, semi.labelled_indices
    t = cfg["train"]
    steps = t["max_steps_per_epoch"]                                 # the study's (study_steps_per_epoch)
    batch = min(t["batch_size"], math.ceil(t["batch_size"] * semi.num_labelled_items / len(semi)))   # (B * L / N)
    rate = max(1, math.ceil(len(base) / len(labelled)), math.ceil(steps * batch / len(labelled)))
    return {"batch_size": batch, "oversample_rate": rate}


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
    check = trainer.learning_check or {"learned": None}
    return {"setting": setting, "label": SETTING_LABELS[setting], "fraction": fraction,
            "num_labelled": len(train_set.labelled_indices) if isinstance(train_set, SemiSupervisedSplit) else 0,
            "num_train_images": len(getattr(train_set, "dataset", train_set)),
            "unlabelled": getattr(train_set, "unlabelled_mode", None), "items_per_epoch": len(train_set),
            "val_miou": float(final["val_miou"]), "val_pixel_acc": float(final["val_pixel_acc"]),
            "epochs": cfg["train"]["num_epochs"], "steps": trainer.global_step,
            "batch_size": cfg["train"]["batch_size"], "train_seconds": round(seconds, 1),
            "threads": torch.get_num_threads(), "source": "trained",
            # slrnet.learning_check: a comparison is only worth reading between runs that learned
            "learned": check["learned"], "learning_findings": list(check.get("findings") or [])}


def train_setting(setting: str, fraction: float | None, profile: str, output_dir, dataset: str = "shapes",
                  data_root=None, device: str = "auto", seed: int = 0, overrides: dict | None = None) -> StudyRun:
    """Train one setting into ``<output_dir>/runs/<setting>_<fraction>`` and evaluate single-scale val mIoU."""
    from slrnet.train import Trainer

    cfg = study_config(setting, fraction, profile, output_dir, dataset, data_root, device, seed, overrides)
    fraction = _check_fraction(setting, fraction)
    train_set = study_train_set(cfg, setting)
    # the study owns its output folder: a rerun replaces its runs
    trainer = Trainer.build(cfg, Path(output_dir).resolve() / "runs" / run_name(setting, fraction),
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
    from slrnet.models.loading import load_trained_model

    run_dir = Path(output_dir).resolve() / "runs" / run_name(setting, fraction)
    model, cfg = load_trained_model(run_dir / "checkpoints" / "last.pth", device=device)
    history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    return StudyRun(setting, fraction, row, history, cfg, model, labelled_indices)


def default_workers(pending: int, device="auto") -> int:
    """How many runs :func:`run_study` trains at once for ``workers="auto"``: on a GPU one after another;
    on a CPU with two or more threads, side by side, one process each with the threads shared out, up to one
    process more than there are threads (on 2 cores, three runs with one thread each finish 1.2-1.4x sooner
    than one after another with two threads; benchmarks/label_efficiency_workers.py).

    Among those counts, the one that finishes ``pending`` equal runs first, with a round of ``w`` workers on
    ``threads`` cores taking ``max(1, w / threads)`` run-times: four runs on 2 cores go two by two (2 run-times)
    rather than three then one (3), three runs all at once (1.5 rather than 2).
    """
    from slrnet.utils import resolve_device

    threads = torch.get_num_threads()
    if resolve_device(device).type != "cpu" or threads < 2 or pending < 2:
        return 1

    def makespan(w: int) -> float:
        return math.ceil(pending / w) * max(1.0, w / threads)

    return min(range(2, min(int(pending), threads + 1) + 1), key=lambda w: (makespan(w), w))


def run_study(fractions, settings=SETTINGS, *, profile: str, output_dir, dataset: str = "shapes", data_root=None,
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
    options = dict(profile=profile, output_dir=output_dir, dataset=dataset, data_root=data_root,
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
    """For metrics.json: ``<setting>_val_miou`` at ``fraction`` (weak: its single run) and ``curves``, every
    setting's val mIoU per pixel-label fraction (``{setting: {fraction: mIoU}}``; weak under ``null``)."""
    out = {"headline_fraction": fraction}
    for setting in SETTINGS:
        hits = [r for r in rows if r["setting"] == setting and (setting == "weak" or r["fraction"] == fraction)]
        out[f"{setting}_val_miou"] = hits[0]["val_miou"] if hits else None
    out["curves"] = {setting: {("null" if r["fraction"] is None else f"{r['fraction']:g}"): r["val_miou"]
                               for r in rows if r["setting"] == setting} for setting in SETTINGS}
    return out


def margins_over_labelled_only(rows: list[dict]) -> list[dict]:
    """Per semi setting and fraction: its val mIoU, the labelled-only baseline's at that fraction, and the margin
    (what the images without pixel labels added at the same budget)."""
    alone = {r["fraction"]: r["val_miou"] for r in rows if r["setting"] == "labelled_only"}
    return [{"setting": r["setting"], "fraction": r["fraction"], "val_miou": r["val_miou"],
             "labelled_only_val_miou": alone[r["fraction"]], "margin": r["val_miou"] - alone[r["fraction"]]}
            for r in rows if r["setting"] in ("semi_w_cls", "semi_wo_cls") and r["fraction"] in alone]


def budget_table(cfgs: dict) -> list[dict]:
    """What each setting trains with (epochs, steps per epoch, batch, SGD steps, loss weights), from its config."""
    out = []
    for setting, cfg in cfgs.items():
        t = cfg["train"]
        out.append({"setting": setting, "epochs": t["num_epochs"], "pretrain_epochs": t["pretrain_epochs"],
                    "steps_per_epoch": t["max_steps_per_epoch"], "steps": t["num_epochs"] * t["max_steps_per_epoch"],
                    "batch_size": t["batch_size"], "loss_coeff": list(t["loss_coeff"])})
    return out


def seed_summary(rows: list[dict]) -> list[dict]:
    """Rows of several seeds (``experiments/label_efficiency_seeds.py``) -> per (setting, fraction): the number
    of seeds, mean and standard deviation of val mIoU, and for the semi settings the mean margin over the
    labelled-only baseline of the same seed and how many seeds it beats it at."""
    by_key: dict = {}
    for r in rows:
        by_key.setdefault((r["setting"], r["fraction"]), {})[r["seed"]] = r["val_miou"]
    out = []
    order = {s: i for i, s in enumerate(SETTINGS)}
    for (setting, fraction), values in sorted(by_key.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] or 0.0)):
        v = np.array(list(values.values()), dtype=np.float64)
        entry = {"setting": setting, "fraction": fraction, "seeds": len(v), "mean": float(v.mean()),
                 "std": float(v.std(ddof=1)) if len(v) > 1 else None}
        alone = by_key.get(("labelled_only", fraction), {})
        if setting in ("semi_w_cls", "semi_wo_cls") and alone:
            margins = np.array([values[s] - alone[s] for s in values if s in alone])
            entry.update(mean_margin=float(margins.mean()), wins=int((margins > 0).sum()), paired=len(margins))
        out.append(entry)
    return out


def summary_rows(summary: list[dict]) -> list[dict]:
    """:func:`seed_summary`'s entries as rows :func:`slrnet.viz.label_efficiency.plot_label_efficiency` draws:
    the mean as ``val_miou``, with its ``std``."""
    return [{"setting": e["setting"], "fraction": e["fraction"], "val_miou": e["mean"], "std": e["std"]}
            for e in summary]


def learning_reading(rows: list[dict]) -> str:
    """Which runs learned (``slrnet.learning_check``), in one line; the runs that did not, with their reason."""
    failed = [r for r in rows if r.get("learned") is False]
    if not failed:
        return f"all {len(rows)} runs passed the learning check: every comparison below is between runs that learned"
    names = "\n".join(f"  {run_name(r['setting'], r['fraction'])}: {'; '.join(r['learning_findings'])}"
                      for r in failed)
    return (f"{len(failed)} of {len(rows)} runs did NOT learn, so a comparison with them measures a failed run, "
            f"not a setting (slrnet.learning_check):\n{names}")


def seed_study_budget_reading(seed_rows: list[dict], rows: list[dict]) -> str:
    """Whether the seed study trained its runs with this run's budget (SGD steps and batch per setting)."""
    fraction = next((r["fraction"] for r in rows if r["fraction"] is not None), None)

    def budgets(rs):
        return {(r["setting"], r["steps"], r["batch_size"]) for r in rs if r["fraction"] in (None, fraction)}

    here, there = budgets(rows), budgets(seed_rows)
    if here and here <= there:
        return "the seed study trained every setting with this notebook's budget (the same SGD steps and batch)"
    steps = sorted({r["steps"] for r in seed_rows})
    return (f"the seed study trained with another budget ({steps} SGD steps per run, this notebook "
            f"{sorted({r['steps'] for r in rows})}): remake it with the command above before comparing")


def seed_reading(summary: list[dict]) -> str:
    """Per semi setting and fraction of :func:`seed_summary`: its mean margin over the labelled-only run, the
    seed spread, and how many seeds it won; in a few lines."""
    spread = {(e["setting"], e["fraction"]): e["std"] for e in summary}
    lines = []
    for e in summary:
        if "mean_margin" not in e:
            continue
        spreads = [spread.get((e["setting"], e["fraction"])), spread.get(("labelled_only", e["fraction"]))]
        if any(v is None for v in spreads):
            verdict = "one seed, so no spread to compare it with"
        else:
            noise = max(spreads)
            verdict = ("larger than" if abs(e["mean_margin"]) > noise else "within") + f" the seed spread ({noise:.3f})"
        lines.append(f"{SETTING_SHORT[e['setting']]} at {100 * e['fraction']:g} %: {e['mean_margin']:+.3f} over "
                     f"labelled only on average, {verdict}; it won at {e['wins']} of {e['paired']} seeds")
    return "\n".join(lines) if lines else "the seed study holds no semi-supervised rows"


def convergence_reading(runs: dict) -> str:
    """Each run's val mIoU at its validations, and whether it was still rising at the last one: a margin between
    runs that had not converged compares how far each got within the budget, not where each would end."""
    from slrnet.learning_check import still_rising

    lines, rising = [], 0
    for key in sorted(runs, key=lambda k: (SETTINGS.index(k[0]), k[1] or 0.0)):
        history = runs[key].history or []
        vals = [(h["epoch"] + 1, h["val_miou"]) for h in history if h.get("val_miou") is not None]
        if not vals:
            continue
        up = still_rising(history)
        rising += up
        lines.append(f"  {run_name(*key)}: " + " -> ".join(f"{v:.3f} (epoch {e})" for e, v in vals)
                     + (", still rising" if up else ""))
    head = (f"{rising} of {len(lines)} runs were still rising at their last validation: the margins compare how far "
            f"each got in this budget, not where each would end" if rising else
            "no run was still rising at its last validation")
    return head + ":\n" + "\n".join(lines)
