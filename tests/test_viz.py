"""slrnet.viz: the shared colour helpers, the training figures and the low-rank factor figures.

Headless (Agg): every function returns a Figure, draws into axes it is given, and shows the numbers it
claims to (checked against slrnet.analysis.factors on a tiny model and small random images).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from slrnet.losses import pseudo_label_targets  # noqa: E402
from slrnet.analysis import factors as FX  # noqa: E402
from slrnet.viz import common, training  # noqa: E402
from slrnet.viz import factors as viz_factors  # noqa: E402
from slrnet.models import build_model  # noqa: E402

TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}}
NAMES = ["background", "a", "b", "c", "d"]
H, W, K = 40, 32, 5


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def factors():
    torch.manual_seed(0)
    model = build_model({**TINY, "num_iters": 2, "use_flip": True}).eval()
    gen = torch.Generator().manual_seed(1)
    images = [torch.randn(3, H, W, generator=gen) for _ in range(2)]
    return [FX.extract_factors(model, im, generator=torch.Generator().manual_seed(i)) for i, im in enumerate(images)]


@pytest.fixture(scope="module")
def masks():
    gen = torch.Generator().manual_seed(2)
    out = [torch.randint(0, K, (H, W), generator=gen) for _ in range(2)]
    out[0][:2] = 255
    return out


def images_of(ax) -> list[np.ndarray]:
    return [np.asarray(im.get_array()) for im in ax.get_images()]


# ----------------------------------------------------------------------------- shared helpers, training figures
def test_color_helpers():
    from slrnet.data.files import voc_colormap
    from slrnet.data.transforms import MEAN

    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and tuple(cmap[1]) == (128, 0, 0) and tuple(cmap[255]) == (224, 224, 192)
    labels = np.array([[0, 1], [255, 2]])
    np.testing.assert_array_equal(common.colorize(labels), cmap[labels])
    rgb = common.to_rgb(torch.zeros(3, 4, 5))
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], np.round(np.array(MEAN) * 255).astype(np.uint8))
    np.testing.assert_allclose(common.class_colors(3), cmap[:3] / 255.0)
    pseudo = torch.zeros(1, 3, 2, 2)
    pseudo[0, 2, 0, 0] = 1
    pseudo[0, 1, 1, 1] = 1
    np.testing.assert_array_equal(pseudo_label_targets(pseudo)[0].numpy(), [[2, 255], [255, 1]])


def test_training_snapshot_draws_each_map():
    gen = torch.Generator().manual_seed(0)
    maps = {"masks": torch.rand(2, K, 8, 8, generator=gen), "refined": torch.rand(2, K, 8, 8, generator=gen),
            "pseudo_gt": (torch.rand(2, K, 8, 8, generator=gen) > 0.7).float()}
    images = torch.randn(2, 3, 8, 8, generator=gen)
    fig = training.plot_training_snapshot(images, maps)
    assert isinstance(fig, Figure) and len(fig.axes) == 8
    for i in range(2):
        row = [images_of(ax)[0] for ax in fig.axes[4 * i:4 * i + 4]]
        np.testing.assert_array_equal(row[0], common.to_rgb(images[i]))
        np.testing.assert_array_equal(row[1], common.colorize(maps["masks"][i].argmax(0)))
        np.testing.assert_array_equal(row[2], common.colorize(maps["refined"][i].argmax(0)))
        np.testing.assert_array_equal(row[3], common.colorize(pseudo_label_targets(maps["pseudo_gt"])[i]))


def test_history_draws_the_losses_and_the_val_miou():
    history = [{"epoch": 0, "train_loss": 1.0, "train_cls": 0.5}, {"epoch": 1, "train_loss": 0.5, "val_miou": 0.3}]
    fig = training.plot_history(history)
    assert isinstance(fig, Figure) and len(fig.axes) == 2          # loss axis and the mIoU twin
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["loss"].get_xdata()) == [1, 2] and list(lines["loss"].get_ydata()) == [1.0, 0.5]
    assert lines["cls"].get_ydata()[0] == 0.5 and np.isnan(lines["cls"].get_ydata()[1])
    (miou,) = fig.axes[1].get_lines()
    assert list(miou.get_xdata()) == [2] and list(miou.get_ydata()) == [0.3]


# ----------------------------------------------------------------------------- factor figures
def test_plot_atom_codes(factors):
    f = factors[0]
    fig = viz_factors.plot_atom_codes(f, NAMES)
    assert isinstance(fig, Figure)
    code_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(code_axes) == 3 * (K + 1)
    # row 2, column k + 1 is atom k's code map on view 1; row 3 on view 2 (its own grid)
    grid = np.array(code_axes).reshape(3, K + 1)
    for k in range(K):
        np.testing.assert_allclose(images_of(grid[1, k + 1])[0], f["codes1"][k].numpy())
        np.testing.assert_allclose(images_of(grid[2, k + 1])[0], f["codes2"][k].numpy())
        np.testing.assert_allclose(images_of(grid[0, k + 1])[0], f["aux_masks"][k].numpy())
    assert "background" in grid[0, 1].get_title()
    assert grid[1, 1].get_images()[0].get_clim() == (0.0, 1.0)                 # flat codes look flat
    assert "class activation map" in grid[0, 0].get_ylabel()
    fig = viz_factors.plot_atom_codes(f, NAMES, scale="stretched")
    grid = np.array([ax for ax in fig.axes if ax.get_images()]).reshape(3, K + 1)
    lo, hi = grid[1, 1].get_images()[0].get_clim()
    assert lo == pytest.approx(float(min(f["codes1"].min(), f["codes2"].min())))
    assert hi == pytest.approx(float(max(f["codes1"].max(), f["codes2"].max())))
    assert f"{lo:.3f}" in fig._suptitle.get_text()
    fig = viz_factors.plot_atom_codes(f, iteration=1)                        # the first iteration's codes
    grid = np.array([ax for ax in fig.axes if ax.get_images()]).reshape(3, K + 1)
    np.testing.assert_allclose(images_of(grid[1, 1])[0], f["codes1_iters"][0, 0].numpy())
    with pytest.raises(ValueError, match="iteration"):
        viz_factors.plot_atom_codes(f, iteration=3)


def test_plot_winning_atoms_uses_given_axes(factors, masks):
    f = factors[0]
    fig, axes = plt.subplots(2, 5)
    out = viz_factors.plot_winning_atoms(f, masks[0], NAMES, axes=axes[1])
    assert out is fig and not axes[0, 0].get_images()
    panels = [images_of(ax)[0] for ax in axes[1]]
    np.testing.assert_array_equal(panels[1], common.colorize(masks[0]))
    np.testing.assert_array_equal(panels[2], common.colorize(FX.winning_atoms(f["codes1"], (H, W))))
    np.testing.assert_array_equal(panels[3], common.colorize(FX.winning_atoms(f["codes2_up"], (H, W))))
    np.testing.assert_array_equal(panels[4], common.colorize(f["prediction"]))
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == NAMES
    assert len(viz_factors.plot_winning_atoms(f).axes) == 4                   # no ground truth: one panel less


def test_plot_code_agreement(factors):
    f = factors[1]
    fig = viz_factors.plot_code_agreement(f)
    disagreement = [ax for ax in fig.axes if ax.get_title() == "code disagreement"][0]
    np.testing.assert_allclose(images_of(disagreement)[0], FX.code_disagreement(f["codes1"], f["codes2_up"]).numpy())
    assert f"{FX.code_agreement(f['codes1'], f['codes2_up']):.1%}" in fig._suptitle.get_text()


def test_plot_dictionary_similarity(factors):
    f = factors[0]
    fig = viz_factors.plot_dictionary_similarity(f, NAMES)
    mats = [images_of(ax)[0] for ax in fig.axes if ax.get_images()]
    assert len(mats) == 3
    d0, dt = f["dictionaries"][0].double(), f["dictionaries"][-1].double()
    cos = lambda a, b: (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T  # noqa: E731
    np.testing.assert_allclose(mats[0], cos(d0, d0).numpy(), atol=1e-6)
    np.testing.assert_allclose(mats[1], cos(dt, dt).numpy(), atol=1e-6)
    np.testing.assert_allclose(mats[2], cos(d0, dt).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.diag(mats[0]), 1.0, atol=1e-6)


def test_plot_atom_class_assignment():
    overlap = np.array([[8, 2, 0], [1, 1, 6], [0, 0, 0]])
    fig, ax = plt.subplots()
    assert viz_factors.plot_atom_class_assignment(overlap, ["bg", "x", "y"], ax=ax) is fig
    boxes = sorted((int(p.get_x() + 0.5), int(p.get_y() + 0.5)) for p in ax.patches)
    assert boxes == [(0, 0), (2, 1)]                                  # (class, atom); the empty atom has none
    np.testing.assert_allclose(images_of(ax)[0], [[0.8, 0.2, 0], [1 / 8, 1 / 8, 6 / 8], [0, 0, 0]])
    assert f"purity {FX.purity(overlap):.2f}" in ax.get_title()


def test_plot_singular_spectra(factors):
    f = factors[0]
    fig = viz_factors.plot_singular_spectra(f)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(lines) == 2
    s = FX.singular_values(f["features"])
    np.testing.assert_allclose(lines[0].get_ydata(), (s / s[0]).numpy(), rtol=1e-6)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"{FX.effective_rank(f['features']):.1f}" in labels[0]
    assert f"{FX.effective_rank(f['reconstruction']):.1f}" in labels[1]


def test_plot_objective(factors):
    fig = viz_factors.plot_objective(factors, names=["one", "two"], trained_iters=1)
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_label() in ("one", "two")]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[1].get_ydata(), factors[1]["relative_objective"].numpy())
    np.testing.assert_array_equal(curves[0].get_xdata(), [1, 2])
    assert len(viz_factors.plot_objective(factors[0]).axes[0].get_lines()) == 1


def test_plot_factor_view_every_view(factors):
    f = factors[0]
    for view, key in zip(viz_factors.VIEWS, ("codes1_iters", "codes2_iters", "codes2_up_iters")):
        fig = viz_factors.plot_factor_view(f, atom=3, view=view, iteration=1, class_names=NAMES)
        code_ax = [ax for ax in fig.axes if ax.get_images()][1]
        np.testing.assert_allclose(images_of(code_ax)[0], f[key][0, 3].numpy())
    with pytest.raises(ValueError, match="view"):
        viz_factors.plot_factor_view(f, view="view 3")
    with pytest.raises(ValueError, match="atom"):
        viz_factors.plot_factor_view(f, atom=K)
    with pytest.raises(ValueError, match="iteration"):
        viz_factors.plot_factor_view(f, iteration=0)


def test_factor_explorer(factors, monkeypatch):
    pytest.importorskip("ipywidgets")
    calls = []
    real = viz_factors.plot_factor_view
    def recording(*args, **kwargs):     # recorded only once drawn: ipywidgets swallows callback errors
        fig = real(*args, **kwargs)
        calls.append(args)
        return fig

    monkeypatch.setattr(viz_factors, "plot_factor_view", recording)
    explorer = viz_factors.factor_explorer(factors, ["one", "two"], NAMES)
    controls = {w.description: w for w in explorer.children if hasattr(w, "description")}
    assert {"image", "atom", "view", "iteration"} <= set(controls)
    assert controls["atom"].max == K - 1 and controls["iteration"].max == 2
    assert calls and calls[-1][0] is factors[0]                       # drawn once when built
    controls["image"].value = 1
    controls["view"].value = "view 2 → 1"
    controls["atom"].value = 4
    assert calls[-1][0] is factors[1] and calls[-1][1:4] == (4, "view 2 → 1", 2)
    with pytest.raises(ValueError, match="no factors"):
        viz_factors.factor_explorer([])
