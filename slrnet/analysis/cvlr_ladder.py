"""What earns SLRNet its gain over the single-stage baseline? An ablation ladder, one budget for every rung.

The paper credits the cross-view low-rank module with +4.5 mIoU on VOC (METHOD.md; Pan et al., IJCV 2022), but its
"without CVLR" baseline drops the second view, the auxiliary head, both consistency losses and the factorisation
at once. The ladder adds them back one at a time, each rung trained from the same pretrained backbone, with the
same schedule and seed (``configs/<dataset>_quick.yaml`` with one or two keys changed):

* ``one_view``          — the single-stage baseline (``model.use_cvlr=false``): one view, cls + seg losses;
* ``two_views``         — two views, the auxiliary head and the mask-consistency loss; the heads see the features
                          themselves (``model.reconstruction=removed``) and the code-consistency weight is 0, so the
                          factorisation, though computed, changes nothing;
* ``code_consistency``  — the same plus the code-consistency loss (weight 4): the codes shape the features, the
                          reconstruction still does not reach the heads;
* ``full_cvlr``         — SLRNet: the heads see ReLU(X + W2 ReLU(Zᵀ D)).

Regimes beside the ladder (``REGIMES``), each SLRNet with one key changed: ``full_cvlr_tau_0.1`` (sharper codes,
``model.temperature=0.1``) and ``full_cvlr_no_code`` (code-consistency weight 0: does that loss flatten the codes?).

The protocol, fixed before any run: val mIoU, single scale, after the last epoch, with the config's test-time class
filter (``val_miou``, the trainer's validation) — and, beside it, ``val_miou_unfiltered`` (argmax over every
class). Each SLRNet run is also evaluated with its reconstruction replaced by its spatial mean and removed at test
time (``test_time``), and its factors are measured on val images (``factors``:
:func:`slrnet.analysis.factors.checkpoint_diagnostics`); every run logs :mod:`slrnet.diagnostics` per epoch.

    >>> rows = run_ladder(["shapes"], RUNGS, seeds=[0, 1], profile="quick", output_dir="/tmp/ladder", workers=2)
    >>> ladder_summary(rows)         # per dataset and rung: mean, spread and seeds

``experiments/cvlr_ladder.py`` writes ``experiments/results/cvlr_ladder_quick.json``, the file notebooks 02 and 04
show.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from slrnet.profiles import dataset_config, training_config

RUNGS = ("one_view", "two_views", "code_consistency", "full_cvlr")
REGIMES = ("full_cvlr_tau_0.1", "full_cvlr_no_code")
SETTINGS = RUNGS + REGIMES
SETTING_LABELS = {
    "one_view": "one view (single-stage baseline)",
    "two_views": "two views + mask consistency, no factorisation",
    "code_consistency": "+ code consistency (reconstruction not used)",
    "full_cvlr": "full CVLR (SLRNet)",
    "full_cvlr_tau_0.1": "SLRNet, temperature 0.1",
    "full_cvlr_no_code": "SLRNet without the code-consistency loss",
}
TEST_TIME = ("mean", "removed")          # what replaces the trained SLRNet's reconstruction at test time
PAPER_VOC_CVLR_GAIN = 4.5                # mIoU points, VOC 2012 val (the paper)


def ladder_config(dataset: str, setting: str, profile: str, output_dir, seed: int = 0, device: str = "auto",
                  overrides: dict | None = None) -> dict:
    """The training config of one rung or regime on one embedded dataset (see the module docstring)."""
    if setting not in SETTINGS:
        raise ValueError(f"setting: expected one of {SETTINGS}, got {setting!r}")
    base = training_config(dataset_config(dataset, "quick"), profile, output_dir,
                           overrides={"misc.seed": int(seed), "misc.device": device, "misc.verbose": 0,
                                      **(overrides or {})})
    c = list(base["train"]["loss_coeff"])
    change = {
        "one_view": {"model.use_cvlr": False},
        "two_views": {"model.reconstruction": "removed", "train.loss_coeff": [c[0], c[1], 0.0, c[3]]},
        "code_consistency": {"model.reconstruction": "removed"},
        "full_cvlr": {},
        "full_cvlr_tau_0.1": {"model.temperature": 0.1},
        "full_cvlr_no_code": {"train.loss_coeff": [c[0], c[1], 0.0, c[3]]},
    }[setting]
    return training_config(dataset_config(dataset, "quick"), profile, output_dir,
                           overrides={"misc.seed": int(seed), "misc.device": device, "misc.verbose": 0,
                                      **(overrides or {}), **change})


def filtered_and_unfiltered_miou(model, dataset, cfg: dict, device="cpu") -> tuple[float, float]:
    """Single-scale val mIoU (the protocol) with the config's class filter, and of the plain argmax."""
    from slrnet.infer import Predictor, TestConfig

    filtered = TestConfig.from_config(cfg, scales=(1.0,), flip=False, use_cls_label=False, apply_crf=False)
    plain = TestConfig(scales=(1.0,), flip=False, fp_cut=0.0, top_k=model.num_classes - 1, bg_pow=1.0)
    return tuple(float(Predictor(model, test, device=device, optimize=False).confusion_matrix(dataset).miou())
                 for test in (filtered, plain))


def test_time_ablations(model, dataset, cfg: dict, device="cpu") -> dict:
    """{"mean" | "removed": {"val_miou", "val_miou_unfiltered"}}: the trained SLRNet with its reconstruction
    replaced by its spatial mean / removed at test time (``model.reconstruction``, restored afterwards)."""
    out, trained = {}, model.reconstruction
    try:
        for mode in TEST_TIME:
            model.reconstruction = mode
            filtered, plain = filtered_and_unfiltered_miou(model, dataset, cfg, device)
            out[mode] = {"val_miou": filtered, "val_miou_unfiltered": plain}
    finally:
        model.reconstruction = trained
    return out


def train_rung(dataset: str, setting: str, seed: int, profile: str, output_dir, device: str = "auto",
               overrides: dict | None = None, factor_images: int = 16) -> dict:
    """Train one rung into ``<output_dir>/runs/<dataset>_<setting>_seed<seed>``; returns its row."""
    from slrnet.analysis.factors import checkpoint_diagnostics
    from slrnet.train import Trainer

    cfg = ladder_config(dataset, setting, profile, output_dir, seed, device, overrides)
    run_dir = Path(output_dir).resolve() / "runs" / f"{dataset}_{setting}_seed{seed}"
    trainer = Trainer.build(cfg, run_dir, device=device, overwrite=True)
    start = time.time()
    trainer.fit()
    seconds = time.time() - start
    model, check = trainer.model.eval(), trainer.learning_check or {}
    limit = cfg["train"]["val_max_images"] or len(trainer.val_set)
    val = torch.utils.data.Subset(trainer.val_set, range(min(limit, len(trainer.val_set))))
    _, unfiltered = filtered_and_unfiltered_miou(model, val, cfg, trainer.device)
    per_epoch = {k[len("train_"):]: [h.get(k) for h in trainer.history]
                 for k in trainer.history[-1] if k.startswith("train_factor_")}
    row = {"dataset": dataset, "setting": setting, "label": SETTING_LABELS[setting], "seed": int(seed),
           "val_miou": float(trainer.history[-1]["val_miou"]), "val_miou_unfiltered": unfiltered,
           "val_miou_per_epoch": [h.get("val_miou") for h in trainer.history],
           "background_only_miou": check.get("background_only_miou"), "learned": check.get("learned"),
           "factor_diagnostics_per_epoch": per_epoch, "epochs": cfg["train"]["num_epochs"],
           "steps": trainer.global_step, "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
           "checkpoint": str(trainer.ckpt_dir / "last.pth")}
    if model.use_cvlr:
        row["factors"] = checkpoint_diagnostics(model, trainer.val_set, count=factor_images, seed=0)
    if model.use_cvlr and model.reconstruction == "used":     # a model whose heads never saw R has none to ablate
        row["test_time"] = test_time_ablations(model, val, cfg, trainer.device)
    return row


def run_ladder(datasets, settings=RUNGS, seeds=(0,), *, profile: str, output_dir, device: str = "auto",
               overrides: dict | None = None, workers: int = 1, on_row=None) -> list[dict]:
    """Every (dataset, setting, seed), ``workers`` at a time; rows in that order; ``on_row(rows, row)`` after each."""
    from slrnet.analysis.side_by_side import run_side_by_side
    from slrnet.data.build import build_dataset
    from slrnet.pretrain import resolve_pretrained

    def prepare():
        for dataset in datasets:
            cfg = ladder_config(dataset, "full_cvlr", profile, output_dir, 0, device, overrides)
            build_dataset(cfg["dataset"], "train", train=True)
            resolve_pretrained(cfg["model"])

    keys = [(d, s, int(seed)) for d in datasets for seed in seeds for s in settings]
    options = dict(profile=profile, output_dir=output_dir, device=device, overrides=overrides)
    return run_side_by_side(train_rung, keys, options, workers, prepare=prepare, on_row=on_row)


def refresh_factors(rows: list[dict], factor_images: int = 16, device: str = "cpu") -> list[dict]:
    """Measure ``factors`` again from each CVLR row's saved checkpoint (no training): rows made before a diagnostic
    was added get it, measured the same way as the new ones. Rows whose checkpoint is gone are left as they are."""
    from slrnet.analysis.factors import checkpoint_diagnostics
    from slrnet.data.build import build_dataset
    from slrnet.models.loading import load_trained_model

    for row in rows:
        path = Path(row.get("checkpoint", ""))
        if row["setting"] == "one_view" or not path.is_file():
            continue
        model, cfg = load_trained_model(path, device=device)
        val = build_dataset(cfg["dataset"], "val", train=False)
        row["factors"] = checkpoint_diagnostics(model, val, count=factor_images, seed=0)
    return rows


def ladder_summary(rows: list[dict]) -> list[dict]:
    """Per dataset and setting: mean val mIoU over seeds, its spread (max - min), the seeds, and the step from the
    rung below (mean difference); the test-time ablations' mean change for SLRNet."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        previous = None
        for setting in SETTINGS:
            runs = [r for r in rows if r["dataset"] == dataset and r["setting"] == setting]
            if not runs:
                continue
            values = [r["val_miou"] for r in runs]
            entry = {"dataset": dataset, "setting": setting, "label": SETTING_LABELS[setting],
                     "val_miou_mean": float(np.mean(values)), "val_miou_spread": float(np.ptp(values)),
                     "seeds": [r["seed"] for r in runs], "val_miou_per_seed": values,
                     "learned": all(r.get("learned") is not False for r in runs)}
            if setting in RUNGS and previous is not None:
                entry["step_from_previous"] = entry["val_miou_mean"] - previous["val_miou_mean"]
            if setting in RUNGS:
                previous = entry
            for mode in TEST_TIME:
                changes = [r["test_time"][mode]["val_miou"] - r["val_miou"] for r in runs if "test_time" in r]
                if changes:
                    entry[f"test_time_{mode}_change"] = float(np.mean(changes))
            out.append(entry)
    return out


def ladder_reading(summary: list[dict], paper_gain: float = PAPER_VOC_CVLR_GAIN) -> list[str]:
    """Sentences reading the ladder per dataset: each rung's step against the seed spread, the total against the
    paper's VOC gain, and what the test-time ablations cost. Every number comes from ``summary``."""
    out = []
    for dataset in dict.fromkeys(e["dataset"] for e in summary):
        entries = {e["setting"]: e for e in summary if e["dataset"] == dataset}
        steps = []
        for setting in RUNGS[1:]:
            e = entries.get(setting)
            if e is None or "step_from_previous" not in e:
                continue
            below = entries[RUNGS[RUNGS.index(setting) - 1]]
            noise = max(e["val_miou_spread"], below["val_miou_spread"])
            seeds = min(len(e["seeds"]), len(below["seeds"]))
            verdict = ("one seed each: no spread to judge it by" if noise == 0 else
                       f"within the larger of the two rungs' seed spreads, {noise:.3f}"
                       if abs(e["step_from_previous"]) <= noise else
                       f"beyond the larger of the two rungs' seed spreads, {noise:.3f}")
            steps.append(f"{SETTING_LABELS[setting]} {e['step_from_previous']:+.3f} ({verdict}; {seeds} seed(s))")
        if steps:
            out.append(f"{dataset}: " + "; ".join(steps) + ".")
        if "one_view" in entries and "full_cvlr" in entries:
            total = entries["full_cvlr"]["val_miou_mean"] - entries["one_view"]["val_miou_mean"]
            out.append(f"{dataset}: SLRNet over the single-stage baseline {total * 100:+.1f} mIoU points "
                       f"(the paper, VOC: {paper_gain:+.1f}).")
        full = entries.get("full_cvlr", {})
        if "test_time_mean_change" in full:
            out.append(f"{dataset}: the trained SLRNet with its reconstruction replaced by the spatial mean at test "
                       f"time changes val mIoU by {full['test_time_mean_change']:+.3f}, with it removed by "
                       f"{full['test_time_removed_change']:+.3f}.")
    return out


def regime_reading(rows: list[dict]) -> list[str]:
    """Per dataset and seed: each regime against SLRNet of the same seed, in val mIoU and in the factor
    diagnostics (winning code, atom cosine, purity over its floor)."""
    out = []
    base = {(r["dataset"], r["seed"]): r for r in rows if r["setting"] == "full_cvlr" and "factors" in r}
    for r in rows:
        ref = base.get((r["dataset"], r["seed"]))
        if r["setting"] not in REGIMES or "factors" not in r or ref is None:
            continue
        a, b = r["factors"], ref["factors"]
        out.append(f"{r['dataset']} seed {r['seed']}, {SETTING_LABELS[r['setting']]}: val mIoU {r['val_miou']:.3f} "
                   f"(SLRNet {ref['val_miou']:.3f}); winning code {a['code_top']:.3f} ({b['code_top']:.3f}), atom "
                   f"cosine {a['atom_cos']:.4f} ({b['atom_cos']:.4f}), purity {a['purity']:.3f} over a floor of "
                   f"{a['purity_single_atom']:.3f} ({b['purity']:.3f} over {b['purity_single_atom']:.3f}).")
    return out
