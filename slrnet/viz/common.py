"""What every figure module shares: pyplot on demand, axes grids, and one way to colour images and labels.

    >>> from slrnet.viz.common import axes_grid, colorize, to_rgb
    >>> fig, axes = axes_grid(None, 2, 3)          # (2, 3) array of axes on a new Figure
    >>> axes[0, 0].imshow(colorize(mask))          # VOC palette, 255 = void

The palette is the dataset's (``slrnet.data.files.voc_colormap``, also written into every mask PNG) and the
image statistics are the transforms' (``slrnet.data.transforms.MEAN / STD``), so a figure shows exactly what
the data files and the network hold.
"""
from __future__ import annotations

import numpy as np
import torch

from slrnet.data.files import voc_colormap
from slrnet.data.transforms import denormalize


def pyplot():
    """matplotlib.pyplot, imported on first use (the library imports without matplotlib's start-up cost)."""
    import matplotlib.pyplot as plt
    return plt


def axes_grid(axes, nrows: int, ncols: int, size=(2.0, 2.0)):
    """(figure, (nrows, ncols) array of axes): made here (``size`` per panel) or reshaped from the caller's."""
    if axes is None:
        fig, axes = pyplot().subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                                      layout="constrained")
        return fig, axes
    axes = np.asarray(axes, dtype=object).reshape(nrows, ncols)
    return axes[0, 0].figure, axes


def figure_and_axes(ax, figsize=(6.0, 3.5)):
    """(figure, ax): a new single-panel Figure when ``ax`` is None, else the caller's axes and their figure."""
    if ax is None:
        return pyplot().subplots(figsize=figsize)
    return ax.figure, ax


def bare(ax) -> None:
    """No ticks: for image panels."""
    ax.set_xticks([])
    ax.set_yticks([])


def to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def to_rgb(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A normalised (3, H, W) image -> uint8 (H, W, 3); an (H, W, 3) array in [0, 255] is clipped to uint8."""
    if image.ndim == 3 and image.shape[0] == 3:
        return denormalize(image)
    return np.clip(to_numpy(image), 0, 255).astype(np.uint8)


def colorize(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Index map (H, W) with 255 void -> RGB (H, W, 3) in the VOC palette."""
    return voc_colormap()[to_numpy(labels).astype(np.int64).clip(0, 255)]


def overlay(image_rgb: np.ndarray, mask, alpha: float = 0.55) -> np.ndarray:
    """Blend the mask colours over the image where the mask is not background."""
    mask = np.asarray(mask)
    out = image_rgb.astype(np.float32)
    fg = mask > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colorize(mask)[fg]
    return out.clip(0, 255).astype(np.uint8)


def class_colors(n: int) -> np.ndarray:
    """The first ``n`` palette colours as RGB floats in [0, 1] (bar charts, legends)."""
    return voc_colormap(max(n, 1))[:n] / 255.0
