"""How far image labels get: weakly supervised SLRNet, its no-CVLR ablation and full supervision, one budget.

The paper's headline comparison on VOC val (METHOD.md; Pan et al., IJCV 2022, tables 2 and 6): SLRNet from
image labels reaches 67.2 mIoU against 80.8 for the same network trained on every pixel label, 83 % of full
supervision, and CVLR adds +4.5 over the single-stage baseline without it. This module measures the same
three numbers on an embedded dataset with the teaching model, each run with the same backbone, the same
pretrained weights and the same schedule:

* ``weak``    — ``configs/<dataset>_quick.yaml``: SLRNet from image labels;
* ``no_cvlr`` — the same with ``model.use_cvlr=false`` (one view, no low-rank reconstruction);
* ``full``    — ``configs/<dataset>_semi_w_cls_quick.yaml`` with every training image pixel-labelled
  (``dataset.labelled_ratio=1.0``, no oversampling), trained on the weak run's schedule: the upper bound.

One protocol, fixed before the runs, for all three (and for the CVLR ladder, ``slrnet.analysis.cvlr_ladder``):
``val_miou`` is single-scale val mIoU after the last epoch with the config's test-time class filter (the classes
whose predicted image score passes ``test.fp_cut``, top-k, background power: the recipe's test-time procedure and
the trainer's validation). ``val_miou_unfiltered``, the argmax over every class, is kept beside it: the fully
supervised model never trains its class scores (a pixel-labelled image's classification loss is replaced by its
segmentation loss, METHOD.md section 4), so the filter may handicap it, and the reader can see by how much.

    >>> from slrnet.analysis.supervision_gap import run_comparison, gap_summary
    >>> rows = run_comparison(["shapes"], profile="smoke", output_dir="/tmp/gap", workers=2)
    >>> gap_summary(rows)          # per dataset: weak / full, CVLR's gain, ...

``experiments/supervision_gap.py`` runs it for both datasets and writes the results file notebook 02 shows.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from slrnet.profiles import dataset_config, training_config

SETTINGS = ("weak", "no_cvlr", "full")
SETTING_LABELS = {"weak": "SLRNet, image labels", "no_cvlr": "without CVLR, image labels",
                  "full": "fully supervised, every pixel label"}
SCHEDULE_KEYS = ("lr", "num_epochs", "pretrain_epochs", "max_steps_per_epoch", "batch_size", "val_every",
                 "val_max_images", "lr_policy")
PAPER_VOC = {"weak": 67.2, "full": 80.8, "cvlr_gain": 4.5}    # VOC 2012 val mIoU (%), the paper


def comparison_config(dataset: str, setting: str, profile: str, output_dir, seed: int = 0, device: str = "auto",
                      overrides: dict | None = None) -> dict:
    """The training config of one setting on one embedded dataset (see the module docstring)."""
    if setting not in SETTINGS:
        raise ValueError(f"setting: expected one of {SETTINGS}, got {setting!r}")
    common = {"misc.seed": int(seed), "misc.device": device, "misc.verbose": 0, **(overrides or {})}
    weak = training_config(dataset_config(dataset, "quick"), profile, output_dir, overrides=common)
    if setting == "weak":
        return weak
    if setting == "no_cvlr":
        return training_config(dataset_config(dataset, "quick"), profile, output_dir,
                               overrides={**common, "model.use_cvlr": False})
    schedule = {f"train.{k}": weak["train"][k] for k in SCHEDULE_KEYS}
    full = training_config(dataset_config(dataset, "semi_w_cls_quick"), profile, output_dir,
                           overrides={**common, **schedule, "dataset.labelled_ratio": 1.0,
                                      "dataset.labelled_list": None, "dataset.oversample_rate": 1})
    return full


def unfiltered_miou(model, dataset, device="cpu") -> float:
    """Single-scale val mIoU of the plain argmax over every class (no class filter, no background power)."""
    from slrnet.infer import Predictor, TestConfig
    from slrnet.metrics import ConfusionMatrix

    test = TestConfig(scales=(1.0,), flip=False, fp_cut=0.0, top_k=model.num_classes - 1, bg_pow=1.0)
    predictor = Predictor(model, test, device=device, optimize=False)
    cm = ConfusionMatrix(model.num_classes)
    for i in range(len(dataset)):
        sample = dataset[i]
        cm.update(predictor.predict(sample["image"]), sample["mask"])
    return float(cm.miou())


def train_comparison(dataset: str, setting: str, profile: str, output_dir, seed: int = 0, device: str = "auto",
                     overrides: dict | None = None) -> dict:
    """Train one setting into ``<output_dir>/runs/<dataset>_<setting>``; returns its row."""
    from slrnet.train import Trainer

    cfg = comparison_config(dataset, setting, profile, output_dir, seed, device, overrides)
    trainer = Trainer.build(cfg, Path(output_dir).resolve() / "runs" / f"{dataset}_{setting}", device=device,
                            overwrite=True)
    start = time.time()
    trainer.fit()
    seconds = time.time() - start
    final, check = trainer.history[-1], trainer.learning_check or {}
    filtered = float(final["val_miou"])
    limit = cfg["train"]["val_max_images"] or len(trainer.val_set)
    val = torch.utils.data.Subset(trainer.val_set, range(min(limit, len(trainer.val_set))))
    unfiltered = unfiltered_miou(trainer.model.eval(), val, trainer.device)
    return {"dataset": dataset, "setting": setting, "label": SETTING_LABELS[setting],
            "val_miou": filtered, "val_miou_filtered": filtered, "val_miou_unfiltered": unfiltered,
            "val_miou_per_epoch": [h.get("val_miou") for h in trainer.history],
            "background_only_miou": check.get("background_only_miou"), "learned": check.get("learned"),
            "epochs": cfg["train"]["num_epochs"], "steps": trainer.global_step,
            "batch_size": cfg["train"]["batch_size"], "train_seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / max(1, trainer.global_step), 4), "threads": torch.get_num_threads()}


def run_comparison(datasets, settings=SETTINGS, *, profile: str, output_dir, seed: int = 0, device: str = "auto",
                   overrides: dict | None = None, workers: int = 1, on_row=None) -> list[dict]:
    """Every (dataset, setting), ``workers`` runs at a time (:func:`slrnet.analysis.side_by_side.run_side_by_side`);
    ``on_row(rows, row)`` after each finished run (to save partial results); rows in (dataset, setting) order."""
    from slrnet.analysis.side_by_side import run_side_by_side
    from slrnet.data.build import build_dataset
    from slrnet.pretrain import resolve_pretrained

    def prepare():      # each dataset and pretrained file made once, here, before the workers look for them
        for dataset in datasets:
            cfg = comparison_config(dataset, "weak", profile, output_dir, seed, device, overrides)
            build_dataset(cfg["dataset"], "train", train=True)
            resolve_pretrained(cfg["model"])

    options = dict(profile=profile, output_dir=output_dir, seed=seed, device=device, overrides=overrides)
    return run_side_by_side(train_comparison, [(d, s) for d in datasets for s in settings], options, workers,
                            prepare=prepare, on_row=on_row)


def gap_summary(rows: list[dict]) -> list[dict]:
    """Per dataset: the three val mIoUs (the one protocol), weak / full and CVLR's gain (weak - no_cvlr),
    with the paper's VOC row (as fractions, like the others)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        miou = {r["setting"]: r["val_miou"] for r in rows if r["dataset"] == dataset}
        has = set(miou)
        out.append({"dataset": dataset, **{s: miou.get(s) for s in SETTINGS},
                    "weak_over_full": miou["weak"] / miou["full"] if {"weak", "full"} <= has and miou["full"] else None,
                    "cvlr_gain": miou["weak"] - miou["no_cvlr"] if {"weak", "no_cvlr"} <= has else None})
    paper = {k: v / 100 for k, v in PAPER_VOC.items()}       # the paper's percentages as fractions, like the rows above
    out.append({"dataset": "VOC 2012 (paper)", "weak": paper["weak"], "no_cvlr": paper["weak"] - paper["cvlr_gain"],
                "full": paper["full"], "weak_over_full": paper["weak"] / paper["full"], "cvlr_gain": paper["cvlr_gain"]})
    return out


def gap_caveats(rows: list[dict]) -> list[str]:
    """One sentence per dataset whose comparison the budget undermines: the fully supervised model is the upper
    bound only once it has converged. Where the weak model reaches or passes it, weak / full says more about the
    budget than about image labels; the sentence gives the full model's last validations as the evidence."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        by_setting = {r["setting"]: r for r in rows if r["dataset"] == dataset}
        weak, full = by_setting.get("weak"), by_setting.get("full")
        if weak is None or full is None or weak["val_miou"] < full["val_miou"]:
            continue
        curve = [v for v in full.get("val_miou_per_epoch") or [] if v is not None]
        trend = (f"; its last validations read {', '.join(f'{v:.3f}' for v in curve[-3:])}" if len(curve) >= 2
                 else "")
        out.append(f"{dataset}: the weakly supervised model ({weak['val_miou']:.3f}) reaches the fully supervised "
                   f"one ({full['val_miou']:.3f}) in this budget, so full supervision is not yet the upper bound "
                   f"here{trend}; weak / full measures the budget more than the labels.")
    return out
