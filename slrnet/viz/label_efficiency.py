"""Figures of the label-efficiency study (notebook 03, ``slrnet.analysis.label_efficiency``): the
label-efficiency curves, val predictions of the trained settings side by side, and what each split shows the
trainer.

    >>> from slrnet.analysis import label_efficiency as study
    >>> from slrnet.viz import label_efficiency as figs
    >>> runs = study.run_study([0.1, 0.5], profile="smoke", output_dir="/tmp/study")
    >>> fig = figs.plot_label_efficiency(study.study_rows(runs))
    >>> fig = figs.plot_setting_predictions({"semi": runs["semi_w_cls", 0.1]}, val_set, range(4))

Each function draws into new axes or the ``ax``/``axes`` given and returns the Figure.
"""
from __future__ import annotations

import numpy as np
import torch

from slrnet.analysis.label_efficiency import SETTING_LABELS, SETTINGS, StudyRun
from slrnet.viz.common import colorize, to_rgb


def plot_label_efficiency(rows: list[dict], ax=None, title: str = "label efficiency"):
    """Pixel-label fraction (x, % of training images) vs val mIoU (y), one line per setting; the weak
    setting, which uses no pixel labels, is a horizontal line. A row with ``std`` (a several-seed mean, from
    :func:`slrnet.analysis.label_efficiency.seed_summary` through :func:`summary_rows`) gets an error bar of one
    standard deviation, and the weak line a band. Only the fractions studied are ticked. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, NullLocator

    if not rows:
        raise ValueError("plot_label_efficiency: no rows to plot")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
    else:
        fig = ax.figure
    fractions = sorted({r["fraction"] for r in rows if r["fraction"] is not None})
    styles = {"semi_w_cls": ("tab:blue", "o"), "semi_wo_cls": ("tab:orange", "s"),
              "labelled_only": ("tab:green", "^"), "weak": ("tab:gray", None)}
    above, below, right = (0, 7), (0, -13), (22, -3)          # value labels, offsets in points

    def label_offset(setting: str, fraction: float, y: float) -> tuple[int, int]:
        """Above the point when it is the highest of the settings at its fraction, below it when it is the lowest,
        beside it otherwise, so that no two labels of one fraction collide."""
        others = [r["val_miou"] for r in rows if r["fraction"] == fraction and r["setting"] != setting]
        if all(y > o or (y == o and setting == "semi_w_cls") for o in others):
            return above
        return below if all(y <= o for o in others) else right

    for setting in SETTINGS:
        hits = sorted((r for r in rows if r["setting"] == setting), key=lambda r: r["fraction"] or 0.0)
        if not hits:
            continue
        color, marker = styles[setting]
        if setting == "weak":
            y, std = hits[0]["val_miou"], hits[0].get("std")
            ax.axhline(y, color=color, ls="--", label=f"{SETTING_LABELS[setting]}: {y:.3f}")
            if std:
                ax.axhspan(y - std, y + std, color=color, alpha=0.15, lw=0)
            continue
        x = [100 * r["fraction"] for r in hits]
        y = [r["val_miou"] for r in hits]
        std = [r.get("std") or 0.0 for r in hits]
        ax.plot(x, y, color=color, marker=marker, label=SETTING_LABELS[setting])
        if any(std):
            ax.errorbar(x, y, yerr=std, fmt="none", ecolor=color, capsize=3)
        for r, xi, yi in zip(hits, x, y):
            ax.annotate(f"{yi:.3f}", (xi, yi), textcoords="offset points", fontsize=8, color=color, ha="center",
                        xytext=label_offset(setting, r["fraction"], yi), annotation_clip=False,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    if len(fractions) > 1:
        ax.set_xscale("log")
        ax.set_xlim(100 * fractions[0] / 1.5, 100 * fractions[-1] * 1.5)
    elif fractions:
        ax.set_xlim(50 * fractions[0], 150 * fractions[0])
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}" for f in fractions])
    ax.xaxis.set_minor_locator(NullLocator())               # no automatic log ticks beside the studied fractions
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("pixel-labelled training images (%)")
    ax.set_ylabel("val mIoU (single scale)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def predict_index_map(run: StudyRun, image: torch.Tensor, device="cpu") -> np.ndarray:
    """Single-scale prediction (H, W) of a trained run (its model) for one normalised image (3, H, W), with the
    test-time class filtering of its config (scores > fp_cut and top-k; none for the wo_cls head)."""
    from slrnet.infer import Predictor, TestConfig

    if run.model is None:
        raise ValueError(f"predict_index_map: the {run.setting} run holds no model")
    single_view = TestConfig.from_config(run.cfg, scales=(1.0,), flip=False, use_cls_label=False, apply_crf=False)
    return Predictor(run.model, single_view, device=device, optimize=False).predict(image).numpy()


def plot_setting_predictions(runs: dict, dataset, indices, device="cpu", axes=None):
    """Val predictions of several trained runs side by side: image | ground truth | one column per run.

    ``runs`` maps a column title to a StudyRun with a model (runs without one are skipped);
    ``axes``: optional (len(indices), 2 + len(runs)) axes to draw into.
    """
    import matplotlib.pyplot as plt

    runs = {k: r for k, r in runs.items() if r.model is not None}
    indices = list(indices)
    if not runs or not indices:
        raise ValueError("plot_setting_predictions: need at least one trained run and one index")
    shape = (len(indices), 2 + len(runs))
    if axes is None:
        fig, axes = plt.subplots(*shape, figsize=(2 * shape[1], 2 * shape[0]), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(shape)
        fig = axes[0, 0].figure
    for row, i in enumerate(indices):
        sample = dataset[i]
        panels = [to_rgb(sample["image"]), colorize(sample["mask"])]
        panels += [colorize(predict_index_map(run, sample["image"], device)) for run in runs.values()]
        for col, panel in enumerate(panels):
            axes[row, col].imshow(panel)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(str(sample["name"]), fontsize=8)
    for col, title in enumerate(["image", "ground truth", *runs]):
        axes[0, col].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_split_examples(splits: dict, per_split: int = 3, axes=None):
    """What the trainer sees: for each named split (a row), one pixel-labelled item, then others, each as
    image | mask (an item without pixel labels says so in its mask panel) with the image labels the item carries.
    ``axes``: optional (len(splits), 2 * per_split) axes to draw into."""
    import matplotlib.pyplot as plt

    
    if not splits:
        raise ValueError("plot_split_examples: no splits given")
    shape = (len(splits), 2 * per_split)
    if axes is None:
        fig, axes = plt.subplots(*shape, figsize=(1.9 * shape[1], 2.2 * shape[0]), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(shape)
        fig = axes[0, 0].figure
    for row, (title, split) in enumerate(splits.items()):
        names = list(getattr(split, "class_names", None) or [])
        picks = split.labelled_indices[:1] + split.unlabelled_indices[:per_split - 1]
        items = {index: item for item, index in reversed(list(enumerate(split.index)))}
        for j, index in enumerate(picks):
            sample = split[items[index]]
            present = [names[k + 1] if names else str(k + 1) for k in np.flatnonzero(sample["labels"].numpy())]
            kind = "pixel labels" if sample["has_mask"] else ("image labels" if sample["has_labels"] else "no labels")
            axes[row, 2 * j].imshow(to_rgb(sample["image"]))
            if sample["has_mask"]:
                axes[row, 2 * j + 1].imshow(colorize(sample["mask"]))
            else:                                          # an all-void mask would draw as a flat box: say it
                axes[row, 2 * j + 1].set_facecolor("0.92")
                axes[row, 2 * j + 1].text(0.5, 0.5, "no pixel\nlabels\n(mask all void)", ha="center",
                                          va="center", fontsize=7, color="0.35",
                                          transform=axes[row, 2 * j + 1].transAxes)
            axes[row, 2 * j].set_title(kind, fontsize=8)
            axes[row, 2 * j + 1].set_title(", ".join(present) or "-", fontsize=7)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= 2 * len(picks):
                ax.axis("off")                             # e.g. a split without unlabelled images
        axes[row, 0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    return fig
