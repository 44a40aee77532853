"""Figures of collective matrix factorisation (notebook 01): code maps, atoms, objectives, sweeps, an explorer.

Every plotting function takes ``ax=None`` / ``axes=None`` and returns the Figure, so it works
headless (Agg) and inline. Codes are given per view as (K, N_v) with the view's grid (h_v, w_v).

    >>> from slrnet import cmf
    >>> from slrnet.analysis.factorization_study import two_view_features
    >>> from slrnet.viz import factorization as figs
    >>> views, shapes = two_view_features(image)          # image (3, H, W) in [0, 1]
    >>> res = cmf.cvlr_factorize(views, num_atoms=6, temperature=0.1)
    >>> fig = figs.plot_code_maps([z[0] for z in res.codes], shapes)
    >>> fig = figs.plot_objectives({"CVLR": res}, svd=cmf.svd_reconstruct(views, 6))

``two_view_features`` builds SLRNet-like inputs without a trained network: per-pixel colour,
position and the responses of a small fixed random conv net, for the image and its 0.5-scale view.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.cmf import cross_view_agreement, cvlr_factorize
from slrnet.ops import resize
from slrnet.viz.common import axes_grid, pyplot, to_numpy

ATOM_CMAP = "tab10"


# ----------------------------------------------------------------------------- figures
def plot_code_maps(codes: Sequence[torch.Tensor], shapes, view_names=None, images=None, axes=None):
    """Rows = views; columns = (image), argmax atom map, then each atom's code map (values in [0, 1])."""
    K = codes[0].shape[0]
    view_names = view_names or [f"view {i + 1}" for i in range(len(codes))]
    extra = 1 if images is not None else 0
    fig, axes = axes_grid(axes, len(codes), K + 1 + extra)
    for v, (z, hw) in enumerate(zip(codes, shapes)):
        maps = to_numpy(z).reshape(K, *hw)
        row = axes[v]
        if images is not None:
            row[0].imshow(to_numpy(images[v]))
            row[0].set_title(f"{view_names[v]} {hw[0]}x{hw[1]}", fontsize=8)
        row[extra].imshow(maps.argmax(0), cmap=ATOM_CMAP, vmin=0, vmax=9, interpolation="nearest")
        row[extra].set_title(f"{view_names[v]}: argmax", fontsize=8)
        for k in range(K):
            row[extra + 1 + k].imshow(maps[k], vmin=0, vmax=1, cmap="magma", interpolation="nearest")
            row[extra + 1 + k].set_title(f"atom {k}", fontsize=8)
        for a in row:
            a.set_xticks([]), a.set_yticks([])
    return fig


def plot_atoms(dictionaries: dict, ax=None):
    """Atoms side by side as heat maps: {name: (K, C)}; rows of each block are atoms, columns channels."""
    plt = pyplot()
    if ax is None:
        fig, ax = plt.subplots(1, len(dictionaries), figsize=(3.2 * len(dictionaries), 2.6), squeeze=False,
                               layout="constrained")
        ax = ax[0]
    ax = np.atleast_1d(ax)
    vmax = max(float(np.abs(to_numpy(d)).max()) for d in dictionaries.values())
    for a, (name, d) in zip(ax, dictionaries.items()):
        im = a.imshow(to_numpy(d), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
        a.set_title(name, fontsize=9), a.set_xlabel("channel"), a.set_ylabel("atom")
    ax[0].figure.colorbar(im, ax=list(ax), shrink=0.8)
    return ax[0].figure


def plot_objectives(results: dict, svd=None, batch_index: int = 0, ax=None):
    """Relative error ||X − Zᵀ D||² / ||X||² against iterations per solver; SVD as the optimum line."""
    plt = pyplot()
    fig, ax = (plt.subplots(figsize=(5, 3.4), layout="constrained") if ax is None else (ax.figure, ax))
    for name, res in results.items():
        err = to_numpy(res.relative_error[:, batch_index])
        ax.plot(np.arange(1, len(err) + 1), err, marker="." if len(err) < 30 else None, label=name)
    if svd is not None:
        ax.axhline(float(svd.relative_error[-1, batch_index]), color="k", ls="--", lw=1,
                   label=f"SVD rank {svd.dictionary.shape[1]} (optimum)")
    ax.set(xlabel="iteration", ylabel="relative error", yscale="log", title="objective per iteration")
    ax.legend(fontsize=8)
    return fig


def plot_error_vs_rank(ranks: Sequence[int], errors: dict, ax=None):
    """Final relative error against the number of atoms K, one line per solver ({name: [error per K]})."""
    plt = pyplot()
    fig, ax = (plt.subplots(figsize=(5, 3.4), layout="constrained") if ax is None else (ax.figure, ax))
    for name, errs in errors.items():
        style = dict(color="k", ls="--") if name.lower().startswith("svd") else {}
        ax.plot(list(ranks), list(errs), marker="o", label=name, **style)
    ax.set(xlabel="rank K (atoms)", ylabel="relative error", yscale="log", title="error vs rank")
    ax.legend(fontsize=8)
    return fig


def plot_sweep(values, rows: Sequence, cols: Sequence, row_label: str, col_label: str, title: str,
               fmt: str = "{:.3f}", cmap: str = "viridis", log: bool = False, ax=None):
    """A small annotated heat map of a 2-D parameter sweep (values[i][j] for rows[i], cols[j])."""
    plt = pyplot()
    from matplotlib.colors import LogNorm

    fig, ax = (plt.subplots(figsize=(0.9 * len(cols) + 1.5, 0.55 * len(rows) + 1.2), layout="constrained")
               if ax is None else (ax.figure, ax))
    v = np.asarray(values, dtype=float)
    im = ax.imshow(v, cmap=cmap, aspect="auto", norm=LogNorm() if log else None)
    middle = np.exp(np.nanmean(np.log(v))) if log else np.nanmean(v)   # text colour threshold
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            ax.text(j, i, fmt.format(v[i, j]), ha="center", va="center", fontsize=7,
                    color="w" if v[i, j] < middle else "k")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols]), ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set(xlabel=col_label, ylabel=row_label, title=title)
    fig.colorbar(im, ax=ax)
    return fig


def plot_cross_view_agreement(code1: torch.Tensor, code2: torch.Tensor, axes=None):
    """code1 (K, h1, w1), code2 (K, h2, w2): view-1 argmax, view-2 argmax resized to view 1, and where they agree."""
    fig, axes = axes_grid(axes, 1, 3, size=(2.6, 2.6))
    up = resize(code2[None].float(), code1.shape[-2:])[0]
    a1, a2 = to_numpy(code1.argmax(0)), to_numpy(up.argmax(0))
    agree = float(cross_view_agreement(code1[None].float(), code2[None].float()))
    axes[0, 0].imshow(a1, cmap=ATOM_CMAP, vmin=0, vmax=9, interpolation="nearest")
    axes[0, 1].imshow(a2, cmap=ATOM_CMAP, vmin=0, vmax=9, interpolation="nearest")
    axes[0, 2].imshow(a1 == a2, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for a, t in zip(axes[0], ["view 1 argmax", "view 2 argmax, resized", f"agree: {agree:.1%}"]):
        a.set_title(t, fontsize=9), a.set_xticks([]), a.set_yticks([])
    return fig


def plot_cross_view_agreements(maps: dict, axes=None):
    """One row of ``plot_cross_view_agreement`` per entry of {name: (code1 (K, h1, w1), code2 (K, h2, w2))},
    the name as the row label (e.g. joint / separate / separate with matched atoms)."""
    fig, axes = axes_grid(axes, len(maps), 3, size=(2.6, 2.6))
    for row, (name, (code1, code2)) in zip(axes, maps.items()):
        plot_cross_view_agreement(code1, code2, axes=row)
        row[0].set_ylabel(name, fontsize=9)
    return fig


def cvlr_explorer(views, shapes, images=None, max_atoms: int = 10):
    """ipywidgets explorer: K, temperature, T and an atom index -> code maps of both views (Jupyter only)."""
    import ipywidgets as widgets
    from IPython.display import display

    plt = pyplot()
    k = widgets.IntSlider(value=min(6, max_atoms), min=2, max=max_atoms, description="K")
    tau = widgets.FloatLogSlider(value=0.1, base=10, min=-2, max=0.5, step=0.1, description="temperature")
    iters = widgets.IntSlider(value=10, min=1, max=50, description="T")
    atom = widgets.IntSlider(value=0, min=0, max=k.value - 1, description="atom")
    out = widgets.Output()

    def draw(*_):
        atom.max = k.value - 1
        res = cvlr_factorize(views, num_atoms=k.value, num_iters=iters.value, temperature=tau.value)
        maps1, maps2 = res.code_maps(shapes)                                            # (1, K, h_v, w_v)
        up2 = resize(maps2, maps1.shape[-2:])
        agree = float(cross_view_agreement(maps1, maps2))
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
            panels = [(maps1[0, atom.value], "magma", 1, f"view 1: atom {atom.value}"),
                      (maps2[0, atom.value], "magma", 1, f"view 2: atom {atom.value}"),
                      (maps1[0].argmax(0), ATOM_CMAP, 9, "view 1 argmax"),
                      (up2[0].argmax(0), ATOM_CMAP, 9, "view 2 argmax, resized")]
            for a, (img, cmap, vmax, title) in zip(axes, panels):
                a.imshow(to_numpy(img), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
                a.set_title(title, fontsize=9), a.set_xticks([]), a.set_yticks([])
            fig.suptitle(f"relative error {float(res.relative_error[-1, 0]):.4f}, "
                         f"cross-view agreement {agree:.1%}", fontsize=9)
            display(fig)
            plt.close(fig)

    for w in (k, tau, iters, atom):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([k, tau]), widgets.HBox([iters, atom]), out])
