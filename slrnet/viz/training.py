"""Training figures: what the network predicts during training, and the loss curves.

    >>> from slrnet.viz.training import plot_history, plot_training_snapshot
    >>> fig = plot_history(history)               # loss terms and val mIoU per epoch
    >>> fig.savefig("curves.png")
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.viz.common import axes_grid, bare, colorize, figure_and_axes, to_rgb


def pseudo_to_index(pseudo: torch.Tensor) -> torch.Tensor:
    """{0,1} pseudo-gt (B, K, H, W) -> index map (B, H, W), 255 where no class is selected."""
    idx = pseudo.argmax(1)
    idx[pseudo.sum(1) < 1] = 255
    return idx


def plot_training_snapshot(images: torch.Tensor, maps: dict, class_names: Sequence[str] | None = None,
                           axes=None):
    """Rows of image | mask (argmax) | PAMR-refined mask | pseudo label (white = ignored)."""
    n = images.shape[0]
    cols = ["image", "mask", "refined", "pseudo label"]
    fig, axes = axes_grid(axes, n, 4)
    masks = maps["masks"].argmax(1).cpu()
    refined = maps["refined"].argmax(1).cpu()
    pseudo = pseudo_to_index(maps["pseudo_gt"].cpu())
    for i in range(n):
        rgb = to_rgb(images[i])
        panels = [rgb, colorize(masks[i]), colorize(refined[i]), colorize(pseudo[i])]
        for j, p in enumerate(panels):
            axes[i, j].imshow(p)
            bare(axes[i, j])
            if i == 0:
                axes[i, j].set_title(cols[j], fontsize=9)
    return fig


def plot_history(history: Sequence[dict], ax=None, keys: Sequence[str] | None = None):
    """Training loss terms per epoch (left axis) and val mIoU (right axis)."""
    fig, ax = figure_and_axes(ax, figsize=(7, 3.5))
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
