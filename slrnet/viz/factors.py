"""Figures of SLRNet's low-rank factors (notebook 04), drawn from ``slrnet.analysis.factors.extract_factors``.

Every function takes optional axes (``ax`` / ``axes``) and returns the Figure, so it runs headless
(Agg) in tests and papermill and inline in JupyterLab. 

    >>> from slrnet.analysis.factors import extract_factors, summarize_factors
    >>> from slrnet.viz.factors import factor_explorer, plot_atom_codes, plot_winning_atoms
    >>> f = extract_factors(model, image)
    >>> plot_atom_codes(f, class_names).savefig("atoms.png")
    >>> plot_winning_atoms(f, mask, class_names)                # image | GT | atoms view 1 / 2 | prediction

Atom k starts as the soft mean of class k's features (the aux head's class map k), so atoms are
drawn in class k's VOC colour: an atom that kept its class paints the ground truth's colour.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.analysis.factors import (code_agreement, code_disagreement, effective_rank, purity, singular_values,
                            winning_atoms, atom_identity_rate)
from slrnet.viz.common import axes_grid, bare, colorize, pyplot, to_rgb

CODE_CMAP = "viridis"
VIEWS = ("view 1", "view 2", "view 2 → 1")


def _names(class_names, k: int) -> list[str]:
    return list(class_names)[:k] if class_names is not None else [f"class {i}" for i in range(k)]


def _codes(factors: dict, view: str, iteration: int | None) -> torch.Tensor:
    """Codes (K, ., .) of one view after ``iteration`` (1..T; None = the last)."""
    key = {"view 1": "codes1_iters", "view 2": "codes2_iters", "view 2 → 1": "codes2_up_iters"}
    if view not in key:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    stack = factors[key[view]]
    t = stack.shape[0] if iteration is None else int(iteration)
    if not 1 <= t <= stack.shape[0]:
        raise ValueError(f"iteration must be in 1..{stack.shape[0]}, got {iteration!r}")
    return stack[t - 1]


# ----------------------------------------------------------------------------- codes
def plot_atom_codes(factors: dict, class_names: Sequence[str] | None = None, iteration: int | None = None,
                    axes=None, scale: str = "absolute"):
    """Per atom k (columns): the class activation map k it starts from, its codes on view 1 and on view 2.

    Rows: the auxiliary head's class activation map (CAM; softmax, colours over [0, 1]) | codes Z1 | codes Z2 on
    view 2's own grid (flipped if view 2 was); the first column shows the image and view 2. Codes are a softmax over
    atoms, so 1/K everywhere means "no preference". ``scale="absolute"`` draws them over [0, 1], so flat codes look
    flat; ``"stretched"`` spans the codes' own minimum and maximum, which makes tiny preferences visible and also
    makes flat codes look structured: the title gives the range either way.
    """
    if scale not in ("absolute", "stretched"):
        raise ValueError(f"plot_atom_codes: scale must be 'absolute' or 'stretched', got {scale!r}")
    k = factors["codes1"].shape[0]
    names = _names(class_names, k)
    fig, axes = axes_grid(axes, 3, k + 1, size=(1.6, 1.6))
    z1, z2 = _codes(factors, "view 1", iteration).float(), _codes(factors, "view 2", iteration).float()
    lo, hi = float(min(z1.min(), z2.min())), float(max(z1.max(), z2.max()))
    limits = (0.0, 1.0) if scale == "absolute" else (lo, max(hi, lo + 1e-6))
    rows = [("class activation map", factors["aux_masks"].float(), (0.0, 1.0)), ("codes view 1", z1, limits),
            ("codes view 2", z2, limits)]
    images = [factors["image"], factors["image"], factors["view2"]]
    mappables = []
    for r, ((label, maps, (vmin, vmax)), image) in enumerate(zip(rows, images)):
        axes[r, 0].imshow(to_rgb(image))
        axes[r, 0].set_ylabel(label, fontsize=8)
        flip = " (flipped)" if r == 2 and factors["view2_flipped"] else ""
        axes[r, 0].set_title(("view 2" + flip) if r == 2 else "image", fontsize=8)
        for j in range(k):
            im = axes[r, j + 1].imshow(maps[j].numpy(), cmap=CODE_CMAP, vmin=vmin, vmax=vmax)
            if r == 0:
                axes[r, j + 1].set_title(f"atom {j}\n({names[j]})", fontsize=8)
        mappables.append(im)
    for ax in axes.ravel():
        bare(ax)
    fig.colorbar(mappables[0], ax=axes[0, -1], shrink=0.8, label="aux prob.")
    fig.colorbar(mappables[1], ax=list(axes[1:, -1]), shrink=0.8, label=f"code (1/K = {1 / k:.3f})")
    t = factors["num_iters"] if iteration is None else iteration
    fig.suptitle(f"atoms: class activation maps (init) and codes after CVLR iteration {t}; codes in "
                 f"[{lo:.3f}, {hi:.3f}], 1/K = {1 / k:.3f}, colours over {'[0, 1]' if scale == 'absolute' else 'that range'}",
                 fontsize=9)
    return fig


def plot_winning_atoms(factors: dict, mask=None, class_names: Sequence[str] | None = None, axes=None):
    """image | ground truth | winning atom on view 1 | on view 2 (mapped back) | prediction.

    Atom k is drawn in class k's colour (it was initialised from class k). ``mask`` (H, W), 255 void.
    """
    panels = [("image", to_rgb(factors["image"]))]
    size = factors["image"].shape[-2:]
    if mask is not None:
        panels.append(("ground truth", colorize(np.asarray(mask))))
    panels += [("winning atom, view 1", colorize(winning_atoms(factors["codes1"], size))),
               ("winning atom, view 2 → 1", colorize(winning_atoms(factors["codes2_up"], size))),
               ("prediction", colorize(factors["prediction"]))]
    fig, axes = axes_grid(axes, 1, len(panels), size=(2.2, 2.2))
    for ax, (title, picture) in zip(axes[0], panels):
        ax.imshow(picture)
        ax.set_title(title, fontsize=8)
        bare(ax)
    if class_names is not None:
        k = factors["codes1"].shape[0]
        palette = colorize(np.arange(k))
        handles = [pyplot().Rectangle((0, 0), 1, 1, color=palette[i] / 255) for i in range(k)]
        fig.legend(handles, _names(class_names, k), loc="lower center", ncol=min(k, 7), fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, -0.12))
    return fig


def plot_code_agreement(factors: dict, axes=None):
    """Cross-view agreement: winning atoms of both views and mean_k |keepmax(Z1) − keepmax(inv(Z2))| per pixel."""
    z1, z2 = factors["codes1"], factors["codes2_up"]
    disagreement = code_disagreement(z1, z2).float().numpy()
    fig, axes = axes_grid(axes, 1, 4, size=(2.2, 2.2))
    axes[0, 0].imshow(to_rgb(factors["image"]))
    axes[0, 0].set_title("image", fontsize=8)
    axes[0, 1].imshow(colorize(winning_atoms(z1)))
    axes[0, 1].set_title("winning atom, view 1", fontsize=8)
    axes[0, 2].imshow(colorize(winning_atoms(z2)))
    axes[0, 2].set_title("winning atom, view 2 → 1", fontsize=8)
    im = axes[0, 3].imshow(disagreement, cmap="magma", vmin=0, vmax=max(float(disagreement.max()), 1e-6))
    axes[0, 3].set_title("code disagreement", fontsize=8)
    fig.colorbar(im, ax=axes[0, 3], shrink=0.8)
    for ax in axes.ravel():
        bare(ax)
    fig.suptitle(f"cross-view code agreement {code_agreement(z1, z2):.1%}, "
                 f"L_code = {disagreement.mean():.4f}", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- dictionary
def _cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    a = a.double() / a.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b.double() / b.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a @ b.T).numpy()


def plot_dictionary_similarity(factors: dict, class_names: Sequence[str] | None = None, axes=None):
    """Cosine similarity of the atoms: initial (l2n(W1 D0ᵀ)) | final (D_T) | initial vs final (how each moved).

    Colours over [min(0, smallest), 1]: identical atoms (a collapsed dictionary) look uniformly bright instead of
    having their differences in the fourth decimal stretched over the colour map; the titles give the mean
    off-diagonal similarity.
    """
    d = factors["dictionaries"]
    k = d.shape[1]
    names = _names(class_names, k)
    off = ~np.eye(k, dtype=bool)
    mats = [("initial atoms", _cosine(d[0], d[0])), (f"after {d.shape[0] - 1} iteration(s)", _cosine(d[-1], d[-1])),
            ("initial (rows) vs final (cols)", _cosine(d[0], d[-1]))]
    vmin = min(0.0, min(float(m.min()) for _, m in mats))
    fig, axes = axes_grid(axes, 1, 3, size=(3.0, 2.8))
    im = None
    for ax, (title, m) in zip(axes[0], mats):
        im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=1)
        ax.set_title(f"{title}\nmean off-diagonal {m[off].mean():.4f}" if k > 1 else title, fontsize=8)
        ax.set_xticks(range(k), names, rotation=90, fontsize=6)
        ax.set_yticks(range(k), names, fontsize=6)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="cosine")
    return fig


def plot_atom_class_assignment(overlap, class_names: Sequence[str] | None = None, ax=None):
    """Share of each atom's winning pixels per ground-truth class; box = the class it covers most.

    overlap (K atoms, K classes) from ``slrnet.analysis.factors.atom_class_overlap`` (summed over images). Atom k
    started from class k, so a boxed diagonal means every atom kept its class.
    """
    plt = pyplot()
    overlap = np.asarray(overlap, dtype=np.float64)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * overlap.shape[1] + 2.5, 0.4 * overlap.shape[0] + 1.5),
                               layout="constrained")
    else:
        fig = ax.figure
    share = overlap / np.maximum(overlap.sum(axis=1, keepdims=True), 1)             # rows sum to 1 (or 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(overlap):
        if row.sum() > 0:
            j = int(row.argmax())
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        for j in range(overlap.shape[1]):
            ax.text(j, i, f"{share[i, j]:.0%}" if row.sum() > 0 else "–", ha="center", va="center", fontsize=6,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(overlap.shape[1]), _names(class_names, overlap.shape[1]), rotation=90, fontsize=7)
    ax.set_yticks(range(overlap.shape[0]), [f"atom {i}" for i in range(overlap.shape[0])], fontsize=7)
    ax.set_xlabel("ground-truth class")
    chance = overlap.sum(axis=0).max() / max(overlap.sum(), 1)
    ax.set_title(f"atom → class: purity {purity(overlap):.2f} (one atom for all: {chance:.2f}),\n"
                 f"atom k = class k on {atom_identity_rate(overlap):.0%} of pixels", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the atom's pixels")
    return fig


# ----------------------------------------------------------------------------- rank and objective
def plot_singular_spectra(factors: dict, ax=None):
    """Singular values (relative to X''s largest) of X' = W1 X and of the reconstruction R = Zᵀ D."""
    plt = pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    else:
        fig = ax.figure
    s_x, s_r = singular_values(factors["features"]), singular_values(factors["reconstruction"])
    top = float(s_x[0]) if float(s_x[0]) > 0 else 1.0
    tiny = np.finfo(np.float32).eps
    for s, label in ((s_x, "features X' = W1 X"), (s_r, "reconstruction R = Zᵀ D")):
        ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s.numpy() / top, tiny), marker=".",
                    label=f"{label} (effective rank {effective_rank(s):.1f})")
    k = factors["codes1"].shape[0]
    ax.axvline(k, color="grey", linestyle="--", linewidth=1)
    ax.text(k, 1.0, f" K = {k}", fontsize=7, va="top", color="grey")
    ax.set_xlabel("index")
    ax.set_ylabel("σ_i / σ_1(X')")
    ax.set_title("singular values before and after the low-rank reconstruction", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def plot_objective(factors: dict | Sequence[dict], names: Sequence[str] | None = None, trained_iters=None, ax=None):
    """Relative factorisation objective ||X' − Zᵀ D||² / ||X'||² per CVLR iteration, one line per image.

    ``trained_iters`` marks the number of iterations the network was trained with.
    """
    plt = pyplot()
    many = [factors] if isinstance(factors, dict) else list(factors)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    else:
        fig = ax.figure
    for i, f in enumerate(many):
        obj = f["relative_objective"].double().numpy()
        ax.plot(np.arange(1, len(obj) + 1), obj, marker="o", markersize=3,
                label=names[i] if names is not None else f"image {i}")
    if trained_iters is not None:
        ax.axvline(trained_iters, color="grey", linestyle="--", linewidth=1, label=f"trained T = {trained_iters}")
    ax.set_xlabel("CVLR iteration t")
    ax.set_ylabel("||X' − Z_tᵀ D_t||² / ||X'||²")
    ax.set_title("factorisation objective per iteration", fontsize=9)
    ax.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------- explorer
def plot_factor_view(factors: dict, atom: int = 0, view: str = "view 1", iteration: int | None = None,
                     class_names: Sequence[str] | None = None, axes=None):
    """One atom's codes on one view after one iteration: image of that view | code map | winning atoms.

    view: "view 1", "view 2" (its own grid) or "view 2 → 1" (mapped back); iteration 1..T (None = T).
    """
    codes = _codes(factors, view, iteration)
    k = codes.shape[0]
    if not 0 <= int(atom) < k:
        raise ValueError(f"atom must be in 0..{k - 1}, got {atom!r}")
    fig, axes = axes_grid(axes, 1, 3, size=(2.6, 2.6))
    axes[0, 0].imshow(to_rgb(factors["view2"] if view == "view 2" else factors["image"]))
    axes[0, 0].set_title(view if view == "view 2" else "image", fontsize=8)
    lo, hi = float(codes.min()), float(codes.max())       # one range for all atoms, as plot_atom_codes
    im = axes[0, 1].imshow(codes[int(atom)].float().numpy(), cmap=CODE_CMAP, vmin=lo, vmax=max(hi, lo + 1e-6))
    axes[0, 1].set_title(f"atom {atom} ({_names(class_names, k)[int(atom)]}), {view}", fontsize=8)
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8)
    axes[0, 2].imshow(colorize(winning_atoms(codes)))
    axes[0, 2].set_title("winning atom", fontsize=8)
    for ax in axes.ravel():
        bare(ax)
    t = factors["num_iters"] if iteration is None else iteration
    fig.suptitle(f"iteration {t} of {factors['num_iters']}", fontsize=9)
    return fig


def factor_explorer(factors: Sequence[dict], names: Sequence[str] | None = None,
                    class_names: Sequence[str] | None = None):
    """ipywidgets explorer over extracted factors: choose image, atom, view and CVLR iteration."""
    import ipywidgets as widgets

    factors = list(factors)
    if not factors:
        raise ValueError("factor_explorer: got no factors")
    names = list(names) if names is not None else [f"image {i}" for i in range(len(factors))]
    k, t = factors[0]["codes1"].shape[0], factors[0]["num_iters"]
    plt = pyplot()

    def show(image: int = 0, atom: int = 0, view: str = VIEWS[0], iteration: int = t):
        fig = plot_factor_view(factors[image], atom, view, iteration, class_names)
        plt.show()
        plt.close(fig)

    return widgets.interactive(
        show,
        image=widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="image"),
        atom=widgets.IntSlider(min=0, max=k - 1, value=0, description="atom"),
        view=widgets.ToggleButtons(options=list(VIEWS), value=VIEWS[0], description="view"),
        iteration=widgets.IntSlider(min=1, max=t, value=t, description="iteration"))


# ----------------------------------------------------------------------------- diagnostics and the ladder
FACTOR_CURVES = (("factor_code_top", "winning code (1/K .. 1)"), ("factor_atom_cos", "atom–atom cosine"),
                 ("factor_init_atom_cos", "initial atom–atom cosine"), ("factor_view_agreement", "view agreement"))


def plot_factor_history(history: Sequence[dict], num_atoms: int, axes=None):
    """The training run's factor diagnostics per epoch (``train_factor_*`` of its history, slrnet.diagnostics).
    Left: winning code, atom similarities and view agreement ([0, 1], with 1/K dashed). Right: the score range (log
    scale: how far apart a pixel's scores are, against τ) and the reconstruction's effective rank (1 .. K)."""
    fig, axes = axes_grid(axes, 1, 2, size=(5.2, 3.4))
    left, right = axes[0]
    epochs = [h["epoch"] + 1 for h in history]
    for key, label in FACTOR_CURVES:
        values = [h.get("train_" + key, np.nan) for h in history]
        if not np.all(np.isnan(values)):
            left.plot(epochs, values, marker=".", label=label)
    left.axhline(1.0 / num_atoms, color="grey", linestyle="--", linewidth=0.8, label="1/K (flat codes)")
    left.set(xlabel="epoch", ylabel="share / cosine", ylim=(-0.02, 1.02))
    left.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2)
    right.semilogy(epochs, [h.get("train_factor_score_range", np.nan) for h in history], marker=".", color="C4",
                   label="score range (log)")
    right.set(xlabel="epoch", ylabel="score range")
    rank = right.twinx()
    rank.plot(epochs, [h.get("train_factor_rank", np.nan) for h in history], color="k", marker="s", markersize=3,
              label="reconstruction effective rank")
    rank.set(ylabel="effective rank", ylim=(0.9, num_atoms + 0.1))
    lines = right.get_legend_handles_labels()
    more = rank.get_legend_handles_labels()
    right.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02))
    fig.suptitle("the low-rank module during training (means over each epoch's steps)", fontsize=9, y=1.12)
    return fig


def plot_ladder(summary: Sequence[dict], ax=None):
    """Val mIoU per rung of the CVLR ladder (``slrnet.analysis.cvlr_ladder.ladder_summary``) and dataset: bars at
    the seed mean, one dot per seed; the regimes beside the ladder hatched."""
    from slrnet.analysis.cvlr_ladder import REGIMES, SETTINGS

    plt = pyplot()
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 3.4), layout="constrained")
    else:
        fig = ax.figure
    settings = [s for s in SETTINGS if any(e["setting"] == s for e in summary)]
    width = 0.8 / max(1, len(datasets))
    for j, dataset in enumerate(datasets):
        for i, setting in enumerate(settings):
            entry = next((e for e in summary if e["dataset"] == dataset and e["setting"] == setting), None)
            if entry is None:
                continue
            x = i + (j - (len(datasets) - 1) / 2) * width
            ax.bar(x, entry["val_miou_mean"], width, color=f"C{j}", alpha=0.8, hatch="//" if setting in REGIMES else None,
                   label=dataset if i == 0 else None)
            ax.plot([x] * len(entry["val_miou_per_seed"]), entry["val_miou_per_seed"], "k.", markersize=4)
            ax.text(x, entry["val_miou_mean"] + 0.01, f"{entry['val_miou_mean']:.3f}", ha="center", fontsize=6)
    ax.set_xticks(range(len(settings)), [s.replace("_", " ") for s in settings], fontsize=7, rotation=15)
    values = [v for e in summary for v in e["val_miou_per_seed"]]
    ax.set(ylabel="val mIoU", ylim=(max(0.0, min(values) - 0.08), min(1.0, max(values) + 0.05)))   # the steps, visible
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("the CVLR ladder: one budget, a rung at a time (dots: seeds)", fontsize=9)
    return fig
