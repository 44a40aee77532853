"""Figures. Every function draws with matplotlib, takes optional axes and returns the Figure,
so it works headless (Agg) in tests and papermill runs, and inline in JupyterLab.

    >>> from slrnet.viz import plot_training_snapshot, plot_history
    >>> fig = plot_history(history)               # loss terms and val mIoU per epoch
    >>> fig.savefig("curves.png")

The low-rank factor figures of notebook 04 (``plot_atom_codes``, ``plot_winning_atoms``, ...,
``factor_explorer``) are defined in ``slrnet.viz_factors`` and re-exported here.
"""
from __future__ import annotations

from typing import Sequence


import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _plt():
    import matplotlib.pyplot as plt
    return plt


def voc_colormap(n: int = 256) -> np.ndarray:
    """The Pascal VOC palette, (n, 3) uint8; index 255 (void) is light grey-white as in VOC."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def to_rgb(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Normalised (3, H, W) tensor -> uint8 (H, W, 3)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    if image.ndim == 3 and image.shape[0] == 3:
        image = image.transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
        image = image * 255
    return np.clip(image, 0, 255).astype(np.uint8)


def colorize(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Index map (H, W) with 255 void -> RGB (H, W, 3) in the VOC palette."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    return voc_colormap()[labels.astype(np.int64)]


def pseudo_to_index(pseudo: torch.Tensor) -> torch.Tensor:
    """{0,1} pseudo-gt (B, K, H, W) -> index map (B, H, W), 255 where no class is selected."""
    idx = pseudo.argmax(1)
    idx[pseudo.sum(1) < 1] = 255
    return idx


def plot_training_snapshot(images: torch.Tensor, maps: dict, class_names: Sequence[str] | None = None,
                           axes=None):
    """Rows of image | mask (argmax) | PAMR-refined mask | pseudo label (white = ignored)."""
    plt = _plt()
    n = images.shape[0]
    cols = ["image", "mask", "refined", "pseudo label"]
    if axes is None:
        fig, axes = plt.subplots(n, 4, figsize=(8, 2 * n), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(n, 4)
        fig = axes[0, 0].figure
    masks = maps["masks"].argmax(1).cpu()
    refined = maps["refined"].argmax(1).cpu()
    pseudo = pseudo_to_index(maps["pseudo_gt"].cpu())
    for i in range(n):
        rgb = to_rgb(images[i])
        panels = [rgb, colorize(masks[i]), colorize(refined[i]), colorize(pseudo[i])]
        for j, p in enumerate(panels):
            axes[i, j].imshow(p)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(cols[j], fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history: Sequence[dict], ax=None, keys: Sequence[str] | None = None):
    """Training loss terms per epoch (left axis) and val mIoU (right axis)."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.5))
    else:
        fig = ax.figure
    epochs = [h["epoch"] + 1 for h in history]
    keys = keys or [k for k in ("train_loss", "train_cls", "train_mask", "train_code", "train_seg")
                    if any(k in h for h in history)]
    for k in keys:
        ax.plot(epochs, [h.get(k, np.nan) for h in history], marker=".", label=k.replace("train_", ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    vals = [(h["epoch"] + 1, h["val_miou"]) for h in history if "val_miou" in h]
    if vals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*vals), color="k", marker="o", label="val mIoU")
        ax2.set_ylabel("val mIoU")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax.set_title("training curves")
    fig.tight_layout()
    return fig


# Figures of the low-rank factors (notebook 04) live in slrnet.viz_factors and are importable from here
# too. Resolved on first use (PEP 562): viz_factors imports the helpers above, so importing it at the
# top of this module would be circular when viz_factors is imported first.
FACTOR_FIGURES = ("plot_atom_codes", "plot_winning_atoms", "plot_code_agreement", "plot_dictionary_similarity",
                  "plot_atom_class_assignment", "plot_singular_spectra", "plot_objective", "plot_factor_view",
                  "factor_explorer")


def __getattr__(name: str):
    if name in FACTOR_FIGURES:
        from slrnet import viz_factors
        return getattr(viz_factors, name)
    raise AttributeError(f"module 'slrnet.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(FACTOR_FIGURES))
