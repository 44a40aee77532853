"""Training figures: what the network predicts during training, and the loss curves.

    >>> from slrnet.viz.training import plot_history, plot_training_snapshot
    >>> fig = plot_history(history)               # loss terms and val mIoU per epoch
    >>> fig.savefig("curves.png")
    >>> fig = plot_snapshot_epochs(snapshots.images, snapshots.history, class_names=names)   # first and last epoch
    >>> fig = plot_stage_walk([walk], class_names=names)   # one image through every stage (analysis.stage_walk)

Ignored pixels of a pseudo label (claimed by no class or by several, index 255) are drawn in the palette's void
colour, cream (224, 224, 192), and named "ignored" in the legends.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.losses import pseudo_label_targets
from slrnet.viz.common import (axes_grid, bare, class_legend_handles, colorize, figure_and_axes, pyplot, to_numpy,
                                to_rgb)


def plot_training_snapshot(images: torch.Tensor, maps: dict, class_names: Sequence[str] | None = None,
                           axes=None):
    """Rows of image | mask (argmax) | PAMR-refined mask | pseudo label (cream = ignored)."""
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
    ``pseudo_history`` as ``(epoch, labels)`` (:func:`slrnet.viz.evaluation.plot_pseudo_label_evolution`); the
    three label maps of the grid (``mask``, ``refined``, ``pseudo``: uint8 (n, H, W)) go to ``history`` as
    ``(epoch, maps)`` (:func:`plot_snapshot_epochs` redraws any two epochs of it).
    ``num_images=0`` (``misc.num_snapshots: 0``) draws nothing; a model without pseudo labels neither."""

    def __init__(self, num_images: int = 4, dpi: int = 80):
        self.num_images, self.dpi = int(num_images), dpi
        self.batch: dict | None = None
        self.pseudo_history: list[tuple[int, torch.Tensor]] = []
        self.history: list[tuple[int, dict]] = []
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
        pseudo = pseudo_label_targets(out["maps"]["pseudo_gt"]).to(torch.uint8).cpu()
        self.pseudo_history.append((epoch, pseudo))
        self.history.append((epoch, {"mask": out["maps"]["masks"].argmax(1).to(torch.uint8).cpu(),
                                     "refined": out["maps"]["refined"].argmax(1).to(torch.uint8).cpu(),
                                     "pseudo": pseudo}))
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
    handles = ax.get_lines()
    vals = [(h["epoch"] + 1, h["val_miou"]) for h in history if "val_miou" in h]
    if vals:
        ax2 = ax.twinx()
        handles += ax2.plot(*zip(*vals), color="k", marker="o", label="val mIoU (single scale)")
        ax2.set_ylabel("val mIoU (single scale)")
        ax2.set_ylim(0, 1)
    # one legend right of the axes, so that no curve's early points hide behind it
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.12 if vals else 1.02, 1.0), fontsize=8,
              frameon=False)
    ax.set_title("training curves")
    fig.tight_layout()
    return fig


def _legend_below(fig, handles, title: str | None = None) -> None:
    """A figure legend under the grid: outside the axes with a layout engine, else anchored below the figure (the
    PNG grows to hold it: ``slrnet.viz.common.save_figure`` saves with a tight bounding box)."""
    engine = fig.get_layout_engine() is not None
    fig.legend(handles=handles, loc="outside lower center" if engine else "upper center",
               **({} if engine else {"bbox_to_anchor": (0.5, 0.0)}), ncol=min(len(handles), 8), fontsize=8,
               frameon=False, title=title, title_fontsize=8)


SNAPSHOT_COLUMNS = (("mask", "mask"), ("refined", "PAMR-refined"), ("pseudo", "pseudo label"))


def _pick_epochs(history: Sequence[tuple[int, dict]], epochs) -> list[tuple[int, dict]]:
    if not history:
        raise ValueError("plot_snapshot_epochs: the snapshot history is empty: train at least one epoch with a "
                         "validation and snapshots first")
    if epochs is None:
        return [history[0]] if len(history) == 1 else [history[0], history[-1]]
    by_epoch = {int(e) + 1: maps for e, maps in history}
    missing = [e for e in epochs if e not in by_epoch]
    if missing:
        raise ValueError(f"plot_snapshot_epochs: no snapshot at epoch(s) {missing} (1-based); the snapshots are at "
                         f"{sorted(by_epoch)}")
    return [(e - 1, by_epoch[e]) for e in epochs]


def plot_snapshot_epochs(images: torch.Tensor, history: Sequence[tuple[int, dict]], epochs: Sequence[int] | None = None,
                         class_names: Sequence[str] | None = None, axes=None):
    """The snapshot layout (mask | PAMR-refined | pseudo label) of the same training crops at two or more epochs.

    ``history`` is :attr:`TrainingSnapshots.history` (``(epoch 0-based, {"mask", "refined", "pseudo"})``, uint8
    (n, H, W) maps); ``epochs`` (1-based, as the titles print them) defaults to the first and the last snapshot.
    Rows: the crops; columns: the image, then the three maps per epoch. ``class_names`` adds a legend of the
    class colours, with the ignored pixels' cream, under the grid."""
    picked = _pick_epochs(history, epochs)
    n = images.shape[0]
    cols = 1 + len(SNAPSHOT_COLUMNS) * len(picked)
    fig, axes = axes_grid(axes, n, cols, size=(1.6, 1.6))
    for i in range(n):
        axes[i, 0].imshow(to_rgb(images[i]))
        j = 1
        for epoch, maps in picked:
            for key, title in SNAPSHOT_COLUMNS:
                axes[i, j].imshow(colorize(maps[key][i]))
                if i == 0:
                    axes[i, j].set_title(f"epoch {epoch + 1}\n{title}", fontsize=8)
                j += 1
        for ax in axes[i]:
            bare(ax)
    axes[0, 0].set_title("crop", fontsize=8)
    if class_names is not None:
        _legend_below(fig, class_legend_handles(class_names, void_label="ignored"))
    return fig


def shade(labels, strength, num_classes: int) -> np.ndarray:
    """Class colours of ``labels`` (H, W) faded towards white where ``strength`` (H, W), the winning probability
    (or code), is low: full colour at 1, white at the uniform value 1 / ``num_classes``."""
    rgb = colorize(labels).astype(np.float32)
    if strength is None:
        return rgb.astype(np.uint8)
    floor = 1.0 / max(int(num_classes), 2)
    a = np.clip((to_numpy(strength).astype(np.float32) - floor) / (1 - floor), 0, 1)[..., None]
    return (255 + (rgb - 255) * a).clip(0, 255).astype(np.uint8)


CODE_STAGES = ("codes_view1", "codes_view2")   # drawn at full colour: SLRNet's codes can sit close to uniform
STAGE_COLUMNS = (("aux_cam", "aux head CAM"), ("mask_view1", "view-1 mask"), ("mask_view2", "view-2 mask"),
                 ("cam", "average\n(absent dropped)"), ("refined", "PAMR"), ("pseudo_label", "pseudo label"),
                 ("codes_view1", "codes view 1\n(winning atom)"), ("codes_view2", "codes view 2\n(winning atom)"),
                 ("prediction", "prediction"), ("prediction_crf", "+ CRF"))


def plot_stage_walk(walks: Sequence[dict], class_names: Sequence[str] | None = None, names: Sequence[str] | None = None,
                    axes=None):
    """One row per image (``slrnet.analysis.stage_walk.stage_walk`` results): the image, the auxiliary head's
    CAM, both views' masks, their average, PAMR, the pseudo label, both views' winning atoms, the prediction, the
    CRF'd prediction, and the ground truth when the walks carry one. Probability maps are their argmax in class
    colours, faded towards white where the winning probability is near uniform; codes are the winning atom in full
    colour (atom k is coloured as class k, which it starts from), however flat the codes are: with SLRNet's
    temperature they can sit close to uniform everywhere, which the reading (``stage_reading``) reports and a fade
    would turn into blank panels. A stage the model lacks (the baseline without CVLR) is an empty panel marked
    "none". ``names`` label the rows; ``class_names`` adds the legend (ignored = cream)."""
    from slrnet.analysis.stage_walk import confidence, label_map

    walks = list(walks)
    if not walks:
        raise ValueError("plot_stage_walk: no stage walks to draw")
    with_gt = any(w.get("mask") is not None for w in walks)
    columns = [("image", "image"), *STAGE_COLUMNS] + ([("mask", "ground truth")] if with_gt else [])
    fig, axes = axes_grid(axes, len(walks), len(columns), size=(1.5, 1.6))
    for i, walk in enumerate(walks):
        k = walk["num_classes"]
        for j, (key, title) in enumerate(columns):
            ax = axes[i, j]
            bare(ax)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if key == "image":
                ax.imshow(to_rgb(walk["image"]))
                continue
            labels = walk.get("mask") if key == "mask" else label_map(walk, key)
            if labels is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8, color="grey",
                        transform=ax.transAxes)
                continue
            ax.imshow(shade(labels, None if key in CODE_STAGES else confidence(walk, key), k))
        if names is not None:
            axes[i, 0].set_ylabel(str(names[i]), fontsize=8)
    if class_names is not None:
        _legend_below(fig, class_legend_handles(class_names, void_label="ignored"),
                      title="masks faded where unsure (winning probability near uniform); codes: winning atom")
    return fig
