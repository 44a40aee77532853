"""Figures for training progress and evaluation: pseudo-label evolution, per-class IoU, predictions,
confusion matrices. Optional axes in, a Figure out, headless-safe.

    >>> from slrnet.viz import evaluation as figs
    >>> fig = figs.plot_per_class_iou({"background": 0.9, "circle": 0.7})
    >>> fig = figs.plot_confusion_matrix(cm.matrix, class_names)
    >>> fig = figs.plot_confusion_before_after(cm_raw.matrix, cm_crf.matrix, class_names)   # and their difference
    >>> fig = figs.plot_best_worst(best_rows, worst_rows)       # rows from analysis.evaluation_report.example_rows
    >>> fig = figs.plot_crf_before_after(rows, class_names)     # image | truth | no CRF | CRF | what the CRF changed
    >>> figs.prediction_explorer(dataset, {"single scale": preds}) # ipywidgets, interactive notebooks only
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from slrnet.viz.common import axes_grid, bare, class_colors, class_legend_handles, colorize, pyplot, to_rgb



def plot_pseudo_label_evolution(images: torch.Tensor, pseudo_history: Sequence[tuple[int, torch.Tensor]],
                                max_epochs: int = 6, axes=None):
    """Rows: images; columns: the image, then its pseudo label after selected epochs (ignored pixels in the void colour)."""
    plt = pyplot()
    if not pseudo_history:
        raise ValueError("pseudo_history is empty: train at least one epoch with snapshots first")
    picks = np.unique(np.linspace(0, len(pseudo_history) - 1, min(max_epochs, len(pseudo_history))).round().astype(int))
    history = [pseudo_history[i] for i in picks]
    n, cols = images.shape[0], 1 + len(history)
    if axes is None:
        fig, axes = plt.subplots(n, cols, figsize=(1.8 * cols, 1.8 * n), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(n, cols)
        fig = axes[0, 0].figure
    for i in range(n):
        axes[i, 0].imshow(to_rgb(images[i]))
        for j, (epoch, pseudo) in enumerate(history, start=1):
            axes[i, j].imshow(colorize(pseudo[i]))
            if i == 0:
                axes[i, j].set_title(f"epoch {epoch + 1}", fontsize=9)
        for ax in axes[i]:
            bare(ax)
    axes[0, 0].set_title("image", fontsize=9)
    fig.tight_layout()
    return fig


def plot_per_class_iou(per_class_iou: Mapping[str, float | None], ax=None, title: str = "per-class IoU",
                       reference: Mapping[str, float | None] | None = None, labels: tuple[str, str] = ("model", "reference")):
    """Horizontal bars of IoU per class (NaN / None = class absent from prediction and ground truth)."""
    plt = pyplot()
    names = list(per_class_iou)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
    else:
        fig = ax.figure

    def clean(values):
        return np.array([np.nan if v is None else float(v) for v in values])

    y = np.arange(len(names))
    vals = clean(per_class_iou.values())
    height = 0.4 if reference is not None else 0.8
    # alone: each class in its palette colour; beside a reference: one colour, so the legend can name it
    colors = class_colors(len(names)) if reference is None else "tab:blue"
    ax.barh(y - (height / 2 if reference is not None else 0), np.nan_to_num(vals), height=height, color=colors,
            label=labels[0] if reference is not None else None)
    if reference is not None:
        ref = clean(reference.get(n) for n in names)
        ax.barh(y + height / 2, np.nan_to_num(ref), height=height, color="lightgrey", label=labels[1])
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))   # outside: bars may reach 1
    for yi, v in zip(y, vals):
        ax.text(min(np.nan_to_num(v) + 0.01, 0.9), yi, "absent" if np.isnan(v) else f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    ax.set_title(f"{title} (mean {np.nanmean(vals):.3f})" if np.isfinite(vals).any() else title)
    fig.tight_layout()
    return fig


def _label_matrix(ax, values: np.ndarray, class_names: Sequence[str], fmt: str, smallest: float, dark: float):
    """Class names on both axes (prediction / ground truth) and, for up to 12 classes, each cell's value where its
    magnitude is at least ``smallest`` (white text where it exceeds ``dark``)."""
    ax.set_xticks(range(len(class_names)))
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)))
    ax.set_yticklabels(class_names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if len(class_names) <= 12:
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                if abs(values[i, j]) >= smallest:
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if abs(values[i, j]) > dark else "black")


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], ax=None, normalize: bool = True):
    """Heat map of a (K, K) confusion matrix, rows = ground truth, normalised per row (recall)."""
    plt = pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    if normalize:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * len(class_names) + 2.5, 0.45 * len(class_names) + 2))
    else:
        fig = ax.figure
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    _label_matrix(ax, m, class_names, "{:.2f}", smallest=0.01, dark=0.5)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def plot_confusion_before_after(before: np.ndarray, after: np.ndarray, class_names: Sequence[str], axes=None,
                                titles: tuple[str, str] = ("without CRF", "with CRF")):
    """Three panels: the row-normalised confusion matrix ``before`` (e.g. without the CRF), ``after``, and their
    difference after - before (blue: more pixels in that cell afterwards, red: fewer; on the diagonal blue
    means a class's recall rose)."""
    fig, axes = axes_grid(axes, 1, 3, size=(0.42 * len(class_names) + 2.3, 0.42 * len(class_names) + 1.9))
    norm = []
    for ax, m, title in zip(axes[0, :2], (before, after), titles):
        plot_confusion_matrix(m, class_names, ax=ax)
        ax.set_title(f"{title} (row-normalised)", fontsize=10)
        m = np.asarray(m, dtype=np.float64)
        norm.append(m / np.maximum(m.sum(1, keepdims=True), 1))
    diff = norm[1] - norm[0]
    ax = axes[0, 2]
    limit = max(float(np.abs(diff).max()), 0.01)
    im = ax.imshow(diff, cmap="RdBu", vmin=-limit, vmax=limit)
    _label_matrix(ax, diff, class_names, "{:+.2f}", smallest=0.005, dark=0.6 * limit)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(f"{titles[1]} - {titles[0]}", fontsize=10)
    return fig


def plot_prediction_rows(rows: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, str]], axes=None):
    """Rows of (image uint8 (H,W,3), ground truth (H,W), prediction (H,W), caption)."""
    plt = pyplot()
    rows = list(rows)
    if not rows:
        raise ValueError("plot_prediction_rows: no rows to plot")
    if axes is None:
        fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows)), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(len(rows), 3)
        fig = axes[0, 0].figure
    for i, (rgb, gt, pred, caption) in enumerate(rows):
        for j, panel in enumerate((rgb, colorize(gt), colorize(pred))):
            axes[i, j].imshow(panel)
            bare(axes[i, j])
        axes[i, 0].set_ylabel(caption, fontsize=8)
    for j, t in enumerate(("image", "ground truth", "prediction")):
        axes[0, j].set_title(t, fontsize=9)
    fig.tight_layout()
    return fig


def plot_predictions(predictor, dataset, indices: Iterable[int], axes=None):
    """Rows of image | ground truth | prediction for ``dataset[indices]``, predicted by a
    :class:`slrnet.infer.Predictor` (its test config: e.g. single scale, class filtering)."""
    rows = []
    for i in indices:
        sample = dataset[i]
        pred = predictor.predict(sample["image"], labels=sample.get("labels")).numpy()
        rows.append((to_rgb(sample["image"]), sample["mask"].numpy(), pred, str(sample["name"])))
    return plot_prediction_rows(rows, axes=axes)


def plot_best_worst(best: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]],
                    worst: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]], axes=None,
                    class_names: Sequence[str] | None = None, titles: tuple[str, str] = ("best", "worst")):
    """Side by side: the best rows (left) and the worst rows (right), each image | ground truth | prediction;
    ``titles`` names the two sides (e.g. ``("median", "worst")``).

    Rows are ``(image uint8 (H,W,3), ground truth (H,W), prediction (H,W), caption)``, e.g. with the
    per-image IoU in the caption. The two lists may differ in length; empty cells are blank.
    ``class_names`` adds a legend of the palette colours (plus void) under the grid.
    """
    plt = pyplot()
    best, worst = list(best), list(worst)
    if not best and not worst:
        raise ValueError("plot_best_worst: both lists of rows are empty")
    n = max(len(best), len(worst))
    if axes is None:
        fig, axes = plt.subplots(n, 6, figsize=(12, 2.1 * n), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(n, 6)
        fig = axes[0, 0].figure
    for side, rows in enumerate((best, worst)):
        block = axes[:, 3 * side:3 * side + 3]
        for i in range(n):
            for ax in block[i]:
                bare(ax)
                if i >= len(rows):
                    ax.axis("off")
            if i >= len(rows):
                continue
            rgb, gt, pred, caption = rows[i]
            for ax, panel in zip(block[i], (rgb, colorize(gt), colorize(pred))):
                ax.imshow(panel)
            block[i, 0].set_ylabel(caption, fontsize=8)
        which = titles[side]
        for ax, t in zip(block[0], ("image", "ground truth", "prediction")):
            ax.set_title(f"{which}: {t}", fontsize=9)
    fig.tight_layout()
    if class_names is not None:
        from matplotlib.patches import Patch

        cmap = class_colors(256)                       # the whole palette: void is 255
        handles = [Patch(color=cmap[i], label=n) for i, n in enumerate(class_names)]
        handles.append(Patch(facecolor=cmap[255], edgecolor="grey", label="void (not scored)"))
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 8),
                   fontsize=8, frameon=False)
    return fig


CRF_CHANGE_COLOURS = {"fixed by the CRF": (0.10, 0.62, 0.20), "broken by the CRF": (0.85, 0.15, 0.15),
                      "changed, wrong both times": (0.98, 0.70, 0.10), "changed, not scored (void)": (0.70, 0.70, 0.70)}


def crf_change_map(gt, before, after, ignore_index: int = 255) -> np.ndarray:
    """RGB float (H, W, 3) of what the CRF changed: white where the label stayed; green where it turned a wrong
    pixel right, red a right one wrong, orange wrong before and after, grey changed on void (not scored)."""
    gt, before, after = (np.asarray(a) for a in (gt, before, after))
    out = np.ones((*gt.shape, 3))
    changed = before != after
    scored = gt != ignore_index
    colours = CRF_CHANGE_COLOURS
    out[changed & scored & (after == gt)] = colours["fixed by the CRF"]
    out[changed & scored & (before == gt)] = colours["broken by the CRF"]
    out[changed & scored & (before != gt) & (after != gt)] = colours["changed, wrong both times"]
    out[changed & ~scored] = colours["changed, not scored (void)"]
    return out


def plot_crf_before_after(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]],
                          class_names: Sequence[str] | None = None, axes=None):
    """One row per image, the same images throughout: image | ground truth | prediction without the CRF | with
    the CRF | what the CRF changed (``crf_change_map``). Rows are ``(image uint8 (H, W, 3), ground truth,
    prediction without CRF, prediction with CRF, caption)``; ``class_names`` adds the class colours to the
    legend of the change colours under the grid."""
    from matplotlib.patches import Patch

    rows = list(rows)
    if not rows:
        raise ValueError("plot_crf_before_after: no rows to plot")
    fig, axes = axes_grid(axes, len(rows), 5, size=(2.0, 2.0))
    for i, (rgb, gt, before, after, caption) in enumerate(rows):
        panels = (rgb, colorize(gt), colorize(before), colorize(after), crf_change_map(gt, before, after))
        for ax, panel in zip(axes[i], panels):
            ax.imshow(panel)
            bare(ax)
        axes[i, 0].set_ylabel(caption, fontsize=8)
    for ax, t in zip(axes[0], ("image", "ground truth", "without CRF", "with CRF", "what the CRF changed")):
        ax.set_title(t, fontsize=9)
    handles = [Patch(facecolor=c, edgecolor="grey", linewidth=0.5, label=n) for n, c in CRF_CHANGE_COLOURS.items()]
    if class_names is not None:
        handles = class_legend_handles(class_names, void_label="void (not scored)") + handles
    fig.legend(handles=handles, loc="outside lower center" if fig.get_layout_engine() is not None else "upper center",
               **({} if fig.get_layout_engine() is not None else {"bbox_to_anchor": (0.5, 0.0)}),
               ncol=min(len(handles), 6), fontsize=8, frameon=False)
    return fig


def plot_setting_comparison(miou: Mapping[str, Mapping[str, float | None]], ax=None,
                            title: str = "mIoU by inference setting"):
    """Grouped bars: one group per inference pass (e.g. single scale, multi-scale + flip), one bar per
    post-processing (e.g. "no CRF", "CRF"); values are mIoU in [0, 1], None = not computed."""
    plt = pyplot()
    groups = list(miou)
    if not groups:
        raise ValueError("plot_setting_comparison: no settings given")
    variants = list(dict.fromkeys(v for g in groups for v in miou[g]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.8 * len(groups) + 2, 3.2))
    else:
        fig = ax.figure
    width = 0.8 / len(variants)
    x = np.arange(len(groups))
    for j, variant in enumerate(variants):
        vals = np.array([np.nan if miou[g].get(variant) is None else float(miou[g][variant]) for g in groups])
        bars = ax.bar(x + (j - (len(variants) - 1) / 2) * width, np.nan_to_num(vals), width=width, label=variant)
        for bar, v in zip(bars, vals):
            ax.text(bar.get_x() + bar.get_width() / 2, np.nan_to_num(v) + 0.01, "n/a" if np.isnan(v) else f"{v:.3f}",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mIoU")
    ax.set_title(title)
    if len(variants) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))   # outside: bars may reach any height
    fig.tight_layout()
    return fig


def prediction_explorer(dataset, predictions: Mapping[str, Sequence[np.ndarray]], names: Sequence[str] | None = None,
                        scores: Mapping[str, Sequence[float]] | None = None):
    """ipywidgets viewer: pick an image of ``dataset``; shows it, its ground truth and the prediction of
    every setting (``predictions``: setting label -> one (H, W) map per image, in dataset order), each
    captioned with its per-image IoU from ``scores`` (same keys) when given."""
    import ipywidgets as widgets

    plt = pyplot()
    labels = list(predictions)
    if not labels:
        raise ValueError("prediction_explorer: no predictions given")
    count = len(predictions[labels[0]])
    if any(len(predictions[k]) != count for k in labels):
        raise ValueError(f"prediction_explorer: settings hold different numbers of maps "
                         f"{ {k: len(v) for k, v in predictions.items()} }")
    names = list(names) if names is not None else [f"image {i}" for i in range(count)]

    def show(index: int = 0):
        sample = dataset[index]
        fig, axes = plt.subplots(1, 2 + len(labels), figsize=(2.3 * (2 + len(labels)), 2.6))
        rgb = to_rgb(sample["image"])
        gt = sample.get("mask") if sample.get("has_mask", True) else None
        panels = [(rgb, "image"), (np.full_like(rgb, 255) if gt is None else colorize(np.asarray(gt)),
                                   "ground truth" if gt is not None else "no pixel labels")]
        for k in labels:
            iou = None if scores is None else scores[k][index]
            caption = k if iou is None or not np.isfinite(iou) else f"{k}\nIoU {iou:.3f}"
            panels.append((colorize(predictions[k][index]), caption))
        for ax, (panel, title) in zip(axes, panels):
            ax.imshow(panel)
            ax.set_title(title, fontsize=8)
            bare(ax)
        fig.tight_layout()
        plt.show()
        plt.close(fig)

    return widgets.interactive(show, index=widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0,
                                                            description="image"))


def plot_label_columns(images: Sequence[np.ndarray], columns: Mapping[str, Sequence[np.ndarray]],
                       captions: Sequence[str] | None = None, axes=None):
    """One row per image: the image (uint8 (H, W, 3)), then one label map per column (``{title: [map per
    image]}``, e.g. ground truth, pseudo label, pseudo label + CRF), in the VOC palette (void white-grey)."""
    images = list(images)
    if not images or any(len(maps) != len(images) for maps in columns.values()):
        raise ValueError("plot_label_columns: every column needs one map per image, and there must be an image")
    ncols = 1 + len(columns)
    fig, axes = axes_grid(axes, len(images), ncols, size=(1.9, 1.9))
    for i, rgb in enumerate(images):
        axes[i, 0].imshow(rgb)
        for j, maps in enumerate(columns.values(), start=1):
            axes[i, j].imshow(colorize(maps[i]))
        for ax in axes[i]:
            bare(ax)
        if captions is not None:
            axes[i, 0].set_ylabel(captions[i], fontsize=8)
    for j, title in enumerate(["image", *columns]):
        axes[0, j].set_title(title, fontsize=9)
    return fig


def _miou_bar_axes(ax, bars, heights, labels, title: str, top: float) -> None:
    """Each bar's value written on it; the groups' labels under them, mIoU from 0 to ``top``."""
    for bar, h in zip(bars, heights):
        ax.text(bar.get_x() + bar.get_width() / 2, h + 0.01, f"{h:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, top)
    ax.set_ylabel("mIoU")
    ax.set_title(title)


def plot_miou_groups(values: Mapping[str, Mapping[str, float]], ax=None, title: str = "val mIoU"):
    """Grouped bars: one group per model (``{model: {setting: mIoU}}``), one bar per setting in each (the same
    colour for a setting in every group), its value written on it."""
    groups = list(values)
    settings = list(dict.fromkeys(k for group in values.values() for k in group))
    if not groups or not settings:
        raise ValueError("plot_miou_groups: nothing to draw")
    fig, ax = (pyplot().subplots(figsize=(2.4 * len(groups) + 1.5, 3.4)) if ax is None else (ax.figure, ax))
    width = 0.8 / len(settings)
    bars, heights = [], []
    for j, setting in enumerate(settings):
        xs = [i - 0.4 + width * (j + 0.5) for i, g in enumerate(groups) if setting in values[g]]
        hs = [float(values[g][setting]) for g in groups if setting in values[g]]
        bars += list(ax.bar(xs, hs, width, color=f"C{j}", label=setting))
        heights += hs
    _miou_bar_axes(ax, bars, heights, groups, title, top=1.1)          # room above the bars for the legend
    ax.legend(fontsize=8, loc="upper left", ncol=len(settings))
    fig.tight_layout()
    return fig


def plot_miou_bars(values: Mapping[str, float], ax=None, title: str = "val mIoU"):
    """One bar per setting (``{label: mIoU}``), its value written on it."""
    fig, ax = (pyplot().subplots(figsize=(1.6 * len(values) + 1.5, 3.2)) if ax is None else (ax.figure, ax))
    labels = list(values)
    heights = [float(values[k]) for k in labels]
    bars = ax.bar(range(len(labels)), heights, color=[f"C{i}" for i in range(len(labels))])
    _miou_bar_axes(ax, bars, heights, labels, title, top=1.0)
    fig.tight_layout()
    return fig
