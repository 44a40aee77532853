"""What every figure module shares: pyplot on demand, axes grids, and one way to colour images and labels.

    >>> from slrnet.viz.common import axes_grid, colorize, to_rgb
    >>> fig, axes = axes_grid(None, 2, 3)          # (2, 3) array of axes on a new Figure
    >>> axes[0, 0].imshow(colorize(mask))          # VOC palette, 255 = void
    >>> save_figure(fig, "outputs/00_dataset_tour", "samples")   # PNG uncropped, then shown

The palette is the dataset's (``slrnet.data.files.voc_colormap``, also written into every mask PNG) and the
image statistics are the transforms' (``slrnet.data.transforms.MEAN / STD``), so a figure shows exactly what
the data files and the network hold.
"""
from __future__ import annotations

from pathlib import Path

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


def label_overlay(image_rgb: np.ndarray, mask, scene: float = 0.35, void_rgb=(255, 255, 255)) -> np.ndarray:
    """The mask in its class colours over a dark grey copy of the image: every labelled pixel is exactly its
    class's palette colour (so the class reads off the legend, whatever the object's own colour), background
    pixels show the scene in grey scaled by ``scene`` towards the palette's black background (dark enough
    that no class colour, grey ones included, is mistaken for it), void pixels are ``void_rgb`` (white)."""
    mask = to_numpy(mask).astype(np.int64)
    rgb = np.asarray(image_rgb, dtype=np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)               # (H, W) luminance
    out = np.repeat((scene * grey)[..., None], 3, axis=-1)
    fg = (mask > 0) & (mask != 255)
    out[fg] = colorize(mask)[fg]
    out[mask == 255] = void_rgb
    return out.clip(0, 255).astype(np.uint8)


def class_legend_handles(class_names, void_label: str | None = "void", void_rgb=None, background: bool = True,
                         background_label: str | None = None, background_rgb=None):
    """Legend patches: each class in its palette colour, then void (palette colour, or ``void_rgb`` in [0, 255]).
    ``background_label`` / ``background_rgb`` restyle class 0 (e.g. ``label_overlay``'s grey scene)."""
    from matplotlib.patches import Patch

    cmap = voc_colormap() / 255.0
    start = 0 if background else 1
    handles = [Patch(facecolor=cmap[c], edgecolor="grey", linewidth=0.5, label=n)
               for c, n in enumerate(class_names) if c >= start]
    if background and handles:
        if background_rgb is not None:
            handles[0].set_facecolor(np.asarray(background_rgb, dtype=float) / 255.0)
        if background_label:
            handles[0].set_label(background_label)
    if void_label:
        colour = cmap[255] if void_rgb is None else np.asarray(void_rgb, dtype=float) / 255.0
        handles.append(Patch(facecolor=colour, edgecolor="grey", linewidth=0.5, label=void_label))
    return handles


def save_figure(fig, output_dir, name: str, dpi: int = 100, show: bool = True) -> Path:
    """Save ``fig`` as ``<output_dir>/<name>.png`` and show it; returns the path.

    Saved with ``bbox_inches="tight"``: the image grows to hold everything drawn, legends and titles
    outside the axes included (a figure legend under the grid, a long title over a narrow chart), and
    trims empty margins. ``show`` displays it the way the notebook shows figures (``plt.show`` for a pyplot
    figure, IPython's display for one made without pyplot; nothing in a script without a display).
    """
    name = str(name)
    if name.endswith(".png"):
        name = name[:-4]
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"save_figure: name must be a plain file name without folders, got {name!r}")
    path = Path(output_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    if show:
        _show(fig)
    return path


def _show(fig) -> None:
    import matplotlib
    from matplotlib._pylab_helpers import Gcf

    plt = pyplot()
    if any(manager.canvas.figure is fig for manager in Gcf.get_all_fig_managers()):
        if matplotlib.get_backend().lower() != "agg":       # Agg cannot show; plt.show would only warn
            plt.show()
        return
    try:                                                    # a Figure() made without pyplot
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(fig)


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
