"""Training figures: what the network predicts during training, and the loss curves.

    >>> from slrnet.viz.training import plot_history, plot_training_snapshot
    >>> fig = plot_history(history)               # loss terms and val mIoU per epoch
    >>> fig.savefig("curves.png")
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.losses import pseudo_label_targets
from slrnet.viz.common import axes_grid, bare, colorize, figure_and_axes, pyplot, to_rgb


def plot_training_snapshot(images: torch.Tensor, maps: dict, class_names: Sequence[str] | None = None,
                           axes=None):
    """Rows of image | mask (argmax) | PAMR-refined mask | pseudo label (white = ignored)."""
    n = images.shape[0]
    cols = ["image", "mask", "refined", "pseudo label"]
    fig, axes = axes_grid(axes, n, 4)
    masks = maps["masks"].argmax(1).cpu()
    refined = maps["refined"].argmax(1).cpu()
    pseudo = pseudo_label_targets(maps["pseudo_gt"].cpu())   # (B, H, W), 255 = ignored
    for i in range(n):
        rgb = to_rgb(images[i])
        panels = [rgb, colorize(masks[i]), colorize(refined[i]), colorize(pseudo[i])]
        for j, p in enumerate(panels):
            axes[i, j].imshow(p)
            bare(axes[i, j])
            if i == 0:
                axes[i, j].set_title(cols[j], fontsize=9)
    return fig


class TrainingSnapshots:
    """A trainer callback (``Trainer(..., callbacks=[TrainingSnapshots(4)])``): after each validation, the grid of
    :func:`plot_training_snapshot` for the first ``num_images`` crops of the first training batch, saved as
    ``<run>/snapshots/epoch_NNN.png``, and their pseudo labels (uint8 (n, H, W), 255 ignored) appended to
    ``pseudo_history`` as ``(epoch, labels)`` (:func:`slrnet.viz.evaluation.plot_pseudo_label_evolution`).
    ``num_images=0`` (``misc.num_snapshots: 0``) draws nothing; a model without pseudo labels neither."""

    def __init__(self, num_images: int = 4, dpi: int = 80):
        self.num_images, self.dpi = int(num_images), dpi
        self.batch: dict | None = None
        self.pseudo_history: list[tuple[int, torch.Tensor]] = []
        self.paths: list = []

    @property
    def images(self) -> torch.Tensor | None:
        """The fixed training crops (n, 3, H, W) the snapshots show."""
        return None if self.batch is None else self.batch["image"]

    def on_batch(self, trainer, batch: dict) -> None:
        if self.batch is None and self.num_images > 0:
            self.batch = {k: v[: self.num_images] for k, v in batch.items() if isinstance(v, torch.Tensor)}

    @torch.no_grad()
    def on_validation(self, trainer, epoch: int) -> None:
        model = trainer.model
        if self.batch is None or not getattr(model, "makes_pseudo_labels", True):
            return
        model.eval()
        out = model(self.batch["image"].to(trainer.device), self.batch["labels"].to(trainer.device))
        model.train()
        fig = plot_training_snapshot(self.batch["image"], out["maps"],
                                     class_names=getattr(trainer.train_set, "class_names", None))
        self.pseudo_history.append((epoch, pseudo_label_targets(out["maps"]["pseudo_gt"]).to(torch.uint8).cpu()))
        folder = trainer.run_dir / "snapshots"
        folder.mkdir(parents=True, exist_ok=True)
        self.paths.append(folder / f"epoch_{epoch + 1:03d}.png")
        fig.savefig(self.paths[-1], dpi=self.dpi)
        pyplot().close(fig)


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
