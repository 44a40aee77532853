"""Dataset figures and statistics for any VOC-layout split (used by notebooks/00_dataset_tour).

    >>> from slrnet.data.voc import VOCSegmentation
    >>> from slrnet.data.tour import dataset_statistics, plot_samples, plot_class_frequency
    >>> ds = VOCSegmentation("data/shapes", "train")
    >>> stats = dataset_statistics(ds, max_images=500)     # counts, frequencies, object sizes
    >>> fig = plot_samples(ds, [0, 1, 2, 3])                # images, masks and image labels

Every plotting function takes ``ax=None`` / ``axes=None`` and returns a matplotlib Figure.
"""
from __future__ import annotations

import numpy as np
import torch

from slrnet.data.transforms import TrainTransform, denormalize
from slrnet.data.voc import VOID, VOCSegmentation, load_mask, voc_colormap


def mask_to_rgb(mask) -> np.ndarray:
    """(H, W) labels (255 = void) -> uint8 (H, W, 3) in VOC colours."""
    return voc_colormap()[np.asarray(mask).astype(np.int64).clip(0, 255)]


def overlay(image_rgb: np.ndarray, mask, alpha: float = 0.55) -> np.ndarray:
    """Blend the mask colours over the image where the mask is not background."""
    mask = np.asarray(mask)
    out = image_rgb.astype(np.float32)
    fg = mask > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * mask_to_rgb(mask)[fg]
    return out.clip(0, 255).astype(np.uint8)


def _label_names(labels, class_names) -> str:
    present = [class_names[i + 1] for i in np.flatnonzero(np.asarray(labels) > 0.5)]
    return ", ".join(present) if present else "(none)"


def _subset(n: int, max_images: int | None) -> np.ndarray:
    """Evenly spaced indices so a capped scan still covers the whole list."""
    if not max_images or max_images >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_images).round().astype(np.int64))


def dataset_statistics(dataset: VOCSegmentation, max_images: int | None = None) -> dict:
    """Class image frequencies, pixel shares and object sizes of a split (reads masks only).

    Returns a JSON-ready dict plus ``per_image`` (arrays for plots): ``area_fraction`` (M, K) is the
    share of each image's pixels per class for the M scanned images with a mask (NaN where absent).
    """
    names = dataset.class_names
    k = dataset.num_classes
    indices = _subset(len(dataset), max_images)
    labels = np.zeros((len(indices), k - 1), dtype=np.float32)              # (M, K-1)
    area = np.full((len(indices), k), np.nan)                               # (M, K)
    pixel_counts = np.zeros(k + 1, dtype=np.int64)                          # K classes + void
    with_mask = np.zeros(len(indices), dtype=bool)
    for row, i in enumerate(indices.tolist()):
        path = dataset.mask_paths[i]
        if path is None:
            labels[row] = dataset.labels_from_xml(i)
            continue
        mask = load_mask(path)
        counts = dataset.mask_value_counts(mask, path)                     # (256,)
        labels[row] = dataset.labels_from_counts(counts)
        pixel_counts[:k] += counts[:k]
        pixel_counts[k] += counts[VOID]
        present = counts[:k] > 0
        area[row, present] = counts[:k][present] / mask.size
        with_mask[row] = True
    image_counts = labels.sum(0).astype(np.float64)
    m = max(1, len(indices))
    fg_area = area[with_mask][:, 1:] if with_mask.any() else np.zeros((0, k - 1))
    mean_area = {names[c + 1]: (float(np.nanmean(fg_area[:, c])) if np.isfinite(fg_area[:, c]).any() else None)
                 for c in range(k - 1)}
    fg_per_image = np.nansum(fg_area, axis=1) if len(fg_area) else np.zeros(0)
    return {
        "split": dataset.split,
        "num_images": len(dataset),
        "num_scanned": int(len(indices)),
        "num_scanned_with_mask": int(with_mask.sum()),
        "class_names": list(names),
        "class_image_counts": {names[c + 1]: int(image_counts[c]) for c in range(k - 1)},
        "class_image_frequency": {names[c + 1]: float(image_counts[c] / m) for c in range(k - 1)},
        "labels_per_image_mean": float(labels.sum(1).mean()) if len(indices) else 0.0,
        "pixel_share": {n: float(pixel_counts[c] / max(1, pixel_counts.sum())) for c, n in enumerate(names)}
        | {"void": float(pixel_counts[k] / max(1, pixel_counts.sum()))},
        "mean_object_area_fraction": mean_area,
        "mean_foreground_fraction": float(fg_per_image.mean()) if len(fg_per_image) else None,
        "per_image": {"indices": indices, "labels": labels, "area_fraction": area, "has_mask": with_mask},
    }


def summary(stats: dict) -> dict:
    """``dataset_statistics`` without the per-image arrays (for metrics.json)."""
    return {key: value for key, value in stats.items() if key != "per_image"}


def plot_samples(dataset: VOCSegmentation, indices, axes=None):
    """Two rows: images (titled with name and image labels), and masks over the images (void in white)."""
    import matplotlib.pyplot as plt

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
        shown = overlay(rgb, mask)
        shown[mask == VOID] = 255
        axes[1, col].imshow(shown)
        axes[1, col].set_title("mask" if sample["has_mask"] else "no mask (labels only)", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_class_legend(class_names, ax=None):
    """Colour swatches of the classes (VOC palette) and void."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = (plt.subplots(figsize=(6, 0.8)) if ax is None else (ax.figure, ax))
    cmap = voc_colormap() / 255.0
    handles = [Patch(color=cmap[c], label=n) for c, n in enumerate(class_names)] + [Patch(color=cmap[VOID], label="void")]
    ax.legend(handles=handles, loc="center", ncol=min(8, len(handles)), fontsize=8, frameon=False)
    ax.axis("off")
    return fig


def plot_class_frequency(stats: dict, ax=None):
    """Bar chart: fraction of scanned images containing each foreground class."""
    import matplotlib.pyplot as plt

    fig, ax = (plt.subplots(figsize=(max(4, 0.45 * len(stats["class_image_frequency"])), 3)) if ax is None
               else (ax.figure, ax))
    names = list(stats["class_image_frequency"])
    values = [stats["class_image_frequency"][n] for n in names]
    colours = voc_colormap()[1:len(names) + 1] / 255.0
    ax.bar(range(len(names)), values, color=colours, edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("fraction of images")
    ax.set_title(f"class image frequency ({stats['split']}, {stats['num_scanned']} images)")
    fig.tight_layout()
    return fig


def plot_object_sizes(stats: dict, ax=None):
    """Box plot of each class's share of the image area, over the images that contain it."""
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    axes[1, 0].imshow(mask_to_rgb(mask))
    for col, (x, y) in enumerate(crops, 1):
        axes[0, col].imshow(denormalize(x))
        axes[0, col].set_title(f"crop {col} ({x.shape[-1]}px)", fontsize=7)
        axes[1, col].imshow(mask_to_rgb(y.numpy()))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def split_sizes(root) -> dict:
    """Number of names in every ``ImageSets/Segmentation/*.txt`` list of a VOC-layout root."""
    from pathlib import Path

    folder = Path(root) / "ImageSets" / "Segmentation"
    return {p.stem: sum(1 for line in p.read_text().splitlines() if line.strip())
            for p in sorted(folder.glob("*.txt"))}


def sample_browser(dataset: VOCSegmentation):
    """An ipywidgets slider over the split showing one sample at a time (interactive notebooks only)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def show(index: int = 0):
        fig = plot_samples(dataset, [index])
        plt.show()
        plt.close(fig)

    return widgets.interactive(show, index=widgets.IntSlider(min=0, max=len(dataset) - 1, step=1, value=0))


def tour_root(data_root, profile: str, output_dir):
    """The folder the tour shows: ``data_root`` when given; else the default shapes dataset (a 40/20-image
    copy inside ``output_dir`` under the smoke profile, so smoke runs take seconds)."""
    from pathlib import Path

    from slrnet.data.synthetic import ensure_default_dataset

    if data_root is not None:
        return Path(data_root).expanduser()
    if profile == "smoke":
        return ensure_default_dataset(Path(output_dir) / "shapes_smoke", num_train=40, num_val=20)
    return ensure_default_dataset()
