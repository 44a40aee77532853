"""Figures of a VOC-layout dataset (notebook 00): samples with their masks (in class colours, legend included) and
image labels, the class legend, class frequencies, class co-occurrence, object sizes, augmented training crops,
and a sample browser.

    >>> from slrnet.data import VOCSegmentation
    >>> from slrnet.analysis.dataset_statistics import dataset_statistics
    >>> from slrnet.viz.dataset import plot_class_frequency, plot_samples
    >>> ds = VOCSegmentation("data/shapes", "train")
    >>> fig = plot_samples(ds, [0, 1, 2, 3])                # images, masks and image labels
    >>> fig = plot_class_frequency(dataset_statistics(ds))

Every plotting function takes ``ax=None`` / ``axes=None`` and returns a matplotlib Figure.
"""
from __future__ import annotations

import numpy as np
import torch

from slrnet.data.files import voc_colormap
from slrnet.data.transforms import TrainTransform, denormalize
from slrnet.data.voc import VOCSegmentation
from slrnet.viz.common import class_legend_handles, colorize, label_overlay, pyplot


def _label_names(labels, class_names) -> str:
    present = [class_names[i + 1] for i in np.flatnonzero(np.asarray(labels) > 0.5)]
    return ", ".join(present) if present else "(none)"


def plot_samples(dataset: VOCSegmentation, indices, axes=None, legend: bool = True):
    """Two rows: images (titled with name and image labels), and masks over the images: every labelled pixel in
    its class's palette colour, the background scene darkened towards black, void in white. ``legend`` puts the
    classes' colours (and void) under the grid, in the same figure."""
    plt = pyplot()

    indices = list(indices)
    if axes is None:
        fig, axes = plt.subplots(2, len(indices), figsize=(2.3 * len(indices), 5.0), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(2, len(indices))
        fig = axes[0, 0].figure
    for col, i in enumerate(indices):
        sample = dataset[i]
        rgb = denormalize(sample["image"])
        mask = sample["mask"].numpy()
        axes[0, col].imshow(rgb)
        axes[0, col].set_title(f"{sample['name']}\n{_label_names(sample['labels'], dataset.class_names)}", fontsize=7)
        axes[1, col].imshow(label_overlay(rgb, mask))
        axes[1, col].set_title("mask" if sample["has_mask"] else "no mask (labels only)", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if legend:
        handles = class_legend_handles(dataset.class_names, void_label="void (not scored)", void_rgb=(255, 255, 255),
                                       background_label=f"{dataset.class_names[0]} (the scene, darkened)")
        ncol = max(2, min(len(handles), 8, int(fig.get_figwidth() / 1.2)))
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8,
                   frameon=False)
    return fig


def plot_class_legend(class_names, ax=None):
    """Colour swatches of the classes (VOC palette) and void, in as many rows as they need to fit the width."""
    plt = pyplot()

    handles = class_legend_handles(class_names)
    ncol = min(6, len(handles))
    rows = -(-len(handles) // ncol)
    width = max(1.2 * ncol, max(len(n) for n in [*class_names, "void"]) * 0.09 * ncol + 0.4 * ncol)
    fig, ax = (plt.subplots(figsize=(width, 0.3 * rows + 0.2)) if ax is None else (ax.figure, ax))
    ax.legend(handles=handles, loc="center", ncol=ncol, fontsize=8, frameon=False)
    ax.axis("off")
    return fig


def plot_cooccurrence(stats: dict, ax=None):
    """Heat map of class co-occurrence: row i, column j = the share of the images holding class i that also hold
    class j (``slrnet.analysis.dataset_statistics.conditional_cooccurrence``); the diagonal is blank and
    each row is labelled with its number of images. Columns read against chance in the bottom row: the
    share of all scanned images holding class j."""
    from slrnet.analysis.dataset_statistics import conditional_cooccurrence

    plt = pyplot()
    names = list(stats["class_names"][1:])
    counts = np.asarray(stats["cooccurrence"], dtype=np.float64)
    if counts.shape != (len(names), len(names)):
        raise ValueError(f"plot_cooccurrence: co-occurrence {counts.shape} does not match {len(names)} classes")
    cond = conditional_cooccurrence(counts)
    np.fill_diagonal(cond, np.nan)
    chance = np.diag(counts) / max(1, stats["num_scanned"])
    grid = np.vstack([cond, chance[None, :]])                                   # (C + 1, C)
    size = 0.55 * len(names) + 2.2
    fig, ax = (plt.subplots(figsize=(size + 0.8, size)) if ax is None else (ax.figure, ax))
    cmap = plt.get_cmap("Purples").with_extremes(bad="white")
    # the colour scale spans the shares present (not 0-1), so that departures from chance show as shades
    top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0
    vmax = min(1.0, max(0.05, top * 1.1))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=vmax)
    ax.axhline(len(names) - 0.5, color="black", linewidth=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names) + 1), [f"{n} ({int(counts[c, c])})" for c, n in enumerate(names)]
                  + ["all images"], fontsize=8)
    ax.set_xlabel("... also holds this class")
    ax.set_ylabel("images with this class (count)")
    if len(names) <= 12:
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                if np.isfinite(grid[r, c]):
                    ax.text(c, r, f"{grid[r, c]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[r, c] > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row's images")
    ax.set_title(f"class co-occurrence ({stats['split']}, {stats['num_scanned']} images)", fontsize=10)
    if ax.figure.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def plot_class_frequency(stats: dict, ax=None):
    """Bar chart: fraction of scanned images containing each foreground class."""
    plt = pyplot()

    fig, ax = (plt.subplots(figsize=(max(4, 0.45 * len(stats["class_image_frequency"])), 3)) if ax is None
               else (ax.figure, ax))
    names = list(stats["class_image_frequency"])
    values = [stats["class_image_frequency"][n] for n in names]
    colours = voc_colormap()[1:len(names) + 1] / 255.0
    ax.bar(range(len(names)), values, color=colours, edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("fraction of images")
    ax.set_title(f"class image frequency ({stats['split']}, {stats['num_scanned']} images)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_object_sizes(stats: dict, ax=None):
    """Box plot of each class's share of the image area, over the images that contain it."""
    plt = pyplot()

    names = stats["class_names"][1:]
    area = stats["per_image"]["area_fraction"][:, 1:]                      # (M, K-1)
    data = [area[np.isfinite(area[:, c]), c] for c in range(len(names))]
    fig, ax = (plt.subplots(figsize=(max(4, 0.45 * len(names)), 3)) if ax is None else (ax.figure, ax))
    keep = [c for c in range(len(names)) if len(data[c])]
    if keep:
        ax.boxplot([data[c] for c in keep], positions=keep, widths=0.6, showfliers=False)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.7, len(names) - 0.3)
    ax.set_ylabel("area fraction")
    ax.set_title("object size (where present)")
    fig.tight_layout()
    return fig


def plot_augmented_crops(dataset: VOCSegmentation, index: int, transform: TrainTransform, num_crops: int = 5,
                         seed: int = 0, axes=None):
    """The original image and ``num_crops`` training crops (top) with their masks (bottom)."""
    plt = pyplot()

    image, mask, _, _ = dataset.load_raw(index)
    generator = torch.Generator().manual_seed(seed)
    saved = transform.generator
    transform.generator = generator  # reproducible crops without touching the global RNG
    try:
        crops = [transform(image, mask) for _ in range(num_crops)]
    finally:
        transform.generator = saved
    cols = num_crops + 1
    if axes is None:
        fig, axes = plt.subplots(2, cols, figsize=(2.0 * cols, 4.2), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(2, cols)
        fig = axes[0, 0].figure
    axes[0, 0].imshow(np.asarray(image))
    axes[0, 0].set_title(f"original {image.width}x{image.height}", fontsize=7)
    axes[1, 0].imshow(colorize(mask))
    for col, (x, y) in enumerate(crops, 1):
        axes[0, col].imshow(denormalize(x))
        axes[0, col].set_title(f"crop {col} ({x.shape[-1]}px)", fontsize=7)
        axes[1, col].imshow(colorize(y.numpy()))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def sample_browser(dataset: VOCSegmentation):
    """An ipywidgets slider over the split showing one sample at a time (interactive notebooks only)."""
    import ipywidgets as widgets

    plt = pyplot()

    def show(index: int = 0):
        fig = plot_samples(dataset, [index])
        plt.show()
        plt.close(fig)

    return widgets.interactive(show, index=widgets.IntSlider(min=0, max=len(dataset) - 1, step=1, value=0))
