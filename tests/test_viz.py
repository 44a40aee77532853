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
    # one legend for both axes, outside them (it hides no point), naming the validation's single scale
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["loss", "cls", "val mIoU (single scale)"]
    fig.canvas.draw()
    assert legend.get_window_extent().x0 > fig.axes[1].get_window_extent().x1


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


# ----------------------------------------------------------------------------- save_figure, label_overlay
def _saved_size(path) -> tuple[int, int]:
    import matplotlib.image as mpimg

    height, width = mpimg.imread(path).shape[:2]
    return width, height


def test_save_figure_keeps_legends_and_titles_outside_the_axes(tmp_path):
    """A legend right of the axes, a figure legend under them and a title wider than the figure all end up
    inside the saved PNG (bbox_inches="tight"), where a plain savefig of the figure's size would cut them."""
    fig, ax = plt.subplots(figsize=(2.0, 1.5))
    ax.plot([0, 1], [0, 1], label="a rather long legend label")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.legend(handles=common.class_legend_handles(NAMES), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=6)
    ax.set_title("a title much wider than this two-inch figure")
    path = common.save_figure(fig, tmp_path / "figs", "wide", dpi=50)
    assert path == tmp_path / "figs" / "wide.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    renderer = fig.canvas.get_renderer()
    width, height = _saved_size(path)
    for artist in (ax.get_legend(), fig.legends[0], ax.title):
        box = artist.get_window_extent(renderer)            # display pixels at the figure's dpi
        assert box.width * 50 / fig.dpi <= width and box.height * 50 / fig.dpi <= height
    extent = fig.get_tightbbox(renderer)                      # inches: everything drawn
    assert width >= extent.width * 50 - 2 and height >= extent.height * 50 - 2
    assert width > 2.0 * 50 and height > 1.5 * 50          # larger than the figure itself: nothing cut
    assert common.save_figure(fig, tmp_path, "again.png").name == "again.png"
    for bad in ("../up", "a/b", ""):
        with pytest.raises(ValueError, match="plain file name"):
            common.save_figure(fig, tmp_path, bad)


def test_class_legend_and_frequency_pngs_are_not_cropped(tmp_path):
    """The two PNGs issue 35 found cut: every legend entry ("background" ... "void") and the title are inside."""
    from slrnet.viz import dataset as figs

    names = ["background", "circle", "square", "triangle", "star", "cross", "crescent"]
    for fig, artists in ((figs.plot_class_legend(names), None),
                         (figs.plot_class_frequency({"class_image_frequency": {n: 0.3 for n in names[1:]},
                                                     "split": "train", "num_scanned": 2000}), None)):
        path = common.save_figure(fig, tmp_path, "f", show=False)
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        artists = ([*ax.get_legend().get_texts()] if ax.get_legend() else [ax.title])
        x0 = min(a.get_window_extent(renderer).x0 for a in artists)
        x1 = max(a.get_window_extent(renderer).x1 for a in artists)
        width, _ = _saved_size(path)
        assert x1 - min(0.0, x0) <= width + 1, [a.get_text() for a in artists]
        if ax.get_legend():
            assert [t.get_text() for t in artists] == names + ["void"]


def test_label_overlay_paints_exact_class_colours():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200                                                  # a red scene
    mask = np.array([[0, 1, 1, 0, 255], [0, 2, 2, 0, 0], [0, 0, 0, 0, 0], [3, 3, 0, 255, 0]])
    out = common.label_overlay(rgb, mask)
    fg = (mask > 0) & (mask != 255)
    np.testing.assert_array_equal(out[fg], common.colorize(mask)[fg])  # not blended with the object's colour
    assert (out[mask == 255] == 255).all()
    bg = out[mask == 0].astype(int)
    assert (bg[:, 0] == bg[:, 1]).all() and (bg[:, 1] == bg[:, 2]).all()   # the scene in grey ...
    assert bg.max() <= 0.35 * 255 < 128                                     # ... darker than the palette grey (class 7)
    handles = common.class_legend_handles(["bg", "x"], void_label="void", void_rgb=(255, 255, 255))
    assert [h.get_label() for h in handles] == ["bg", "x", "void"]
    np.testing.assert_allclose(handles[1].get_facecolor()[:3], common.class_colors(2)[1])
    np.testing.assert_allclose(handles[2].get_facecolor()[:3], [1, 1, 1])


# ----------------------------------------------------------------------------- snapshots at two epochs, the stage walk
def _legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_snapshot_callback_keeps_the_maps_it_draws(tmp_path):
    """``TrainingSnapshots.history`` holds the three label maps of each saved grid, per validation."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = build_model({**TINY, "pamr_iter": 1, "pamr_dilations": [1]})
    gen = torch.Generator().manual_seed(3)
    batch = {"image": torch.randn(3, 3, 24, 24, generator=gen), "labels": torch.tensor([[1.0, 0, 0, 1]] * 3)}
    trainer = SimpleNamespace(model=model, device=torch.device("cpu"), run_dir=tmp_path,
                              train_set=SimpleNamespace(class_names=NAMES))
    snaps = training.TrainingSnapshots(2)
    snaps.on_batch(trainer, batch)
    for epoch in (0, 3):
        snaps.on_validation(trainer, epoch)
    assert [e for e, _ in snaps.history] == [0, 3]
    assert [p.name for p in snaps.paths] == ["epoch_001.png", "epoch_004.png"]
    model.eval()
    with torch.no_grad():
        maps = model(batch["image"][:2], batch["labels"][:2])["maps"]
    epoch, kept = snaps.history[-1]
    assert set(kept) == {"mask", "refined", "pseudo"} and kept["pseudo"].dtype == torch.uint8
    np.testing.assert_array_equal(kept["mask"], maps["masks"].argmax(1))
    np.testing.assert_array_equal(kept["refined"], maps["refined"].argmax(1))
    np.testing.assert_array_equal(kept["pseudo"], pseudo_label_targets(maps["pseudo_gt"]))
    assert torch.equal(snaps.pseudo_history[-1][1], kept["pseudo"])


def test_plot_snapshot_epochs_draws_first_and_last():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 6, 6, generator=gen)
    history = [(e, {k: torch.randint(0, K, (2, 6, 6), generator=gen, dtype=torch.uint8)
                    for k in ("mask", "refined", "pseudo")}) for e in (1, 3, 5)]
    history[0][1]["pseudo"][0, 0, 0] = 255
    fig = training.plot_snapshot_epochs(images, history, class_names=NAMES)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 7
    titles = [ax.get_title() for ax in fig.axes[:7]]
    assert titles == ["crop", "epoch 2\nmask", "epoch 2\nPAMR-refined", "epoch 2\npseudo label",
                      "epoch 6\nmask", "epoch 6\nPAMR-refined", "epoch 6\npseudo label"]
    for i in range(2):
        row = [images_of(ax)[0] for ax in fig.axes[7 * i:7 * i + 7]]
        np.testing.assert_array_equal(row[0], common.to_rgb(images[i]))
        for j, (_, maps) in enumerate((history[0], history[-1])):
            for c, key in enumerate(("mask", "refined", "pseudo")):
                np.testing.assert_array_equal(row[1 + 3 * j + c], common.colorize(maps[key][i]))
    assert tuple(images_of(fig.axes[3])[0][0, 0]) == (224, 224, 192)      # ignored: cream, as the legend says
    assert _legend_labels(fig) == NAMES + ["ignored"]
    fig = training.plot_snapshot_epochs(images, history, epochs=[4])
    assert len(fig.axes) == 2 * 4 and fig.axes[1].get_title() == "epoch 4\nmask" and not fig.legends
    assert len(training.plot_snapshot_epochs(images, history[:1]).axes) == 2 * 4     # one snapshot: one epoch
    _, axes = plt.subplots(2, 7)
    assert training.plot_snapshot_epochs(images, history, axes=axes) is axes[0, 0].figure
    with pytest.raises(ValueError, match=r"no snapshot at epoch\(s\) \[3\]"):
        training.plot_snapshot_epochs(images, history, epochs=[2, 3])
    with pytest.raises(ValueError, match="empty"):
        training.plot_snapshot_epochs(images, [])


def test_shade_fades_towards_white_when_unsure():
    labels = np.array([[1, 1, 0]])
    out = training.shade(labels, np.array([[1.0, 1 / K, 0.5]]), K)
    np.testing.assert_array_equal(out[0, 0], common.colorize(labels)[0, 0])       # sure: the class colour
    assert tuple(out[0, 1]) == (255, 255, 255)                                    # uniform: white
    assert 0 < out[0, 2, 0] == out[0, 2, 1] == out[0, 2, 2] < 255                  # background half sure: grey
    np.testing.assert_array_equal(training.shade(labels, None, K), common.colorize(labels))


def test_plot_stage_walk_draws_every_stage():
    from slrnet.analysis import stage_walk as SW

    torch.manual_seed(0)
    model = build_model({**TINY, "pamr_iter": 2, "pamr_dilations": [1, 2]})
    gen = torch.Generator().manual_seed(4)
    image, mask = torch.randn(3, 24, 20, generator=gen), torch.randint(0, K, (24, 20), generator=gen)
    labels = torch.tensor([0.0, 1.0, 0.0, 0.0])
    walk = SW.stage_walk(model, image, labels, mask=mask)
    base = build_model({**TINY, "use_cvlr": False, "pamr_iter": 1, "pamr_dilations": [1]})
    plain = SW.stage_walk(base, image, labels, apply_crf=False)
    fig = training.plot_stage_walk([walk, plain], class_names=NAMES, names=["cvlr", "baseline"])
    cols = 1 + len(training.STAGE_COLUMNS) + 1                                   # image, the stages, ground truth
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * cols
    assert [ax.get_title() for ax in fig.axes[:cols]] == (["image"] + [t for _, t in training.STAGE_COLUMNS]
                                                          + ["ground truth"])
    row = fig.axes[:cols]
    np.testing.assert_array_equal(images_of(row[0])[0], common.to_rgb(image))
    for j, (key, _) in enumerate(training.STAGE_COLUMNS, start=1):
        strength = None if key in training.CODE_STAGES else SW.confidence(walk, key)   # codes: full colour
        expected = training.shade(SW.label_map(walk, key), strength, K)
        np.testing.assert_array_equal(images_of(row[j])[0], expected, err_msg=key)
    np.testing.assert_array_equal(images_of(row[-1])[0], common.colorize(mask))
    assert row[0].get_ylabel() == "cvlr" and fig.axes[cols].get_ylabel() == "baseline"
    missing = {key for j, (key, _) in enumerate(training.STAGE_COLUMNS, start=1)
               if not images_of(fig.axes[cols + j])}
    assert missing == {"aux_cam", "mask_view2", "codes_view1", "codes_view2", "prediction_crf"}
    assert [t.get_text() for t in fig.axes[cols + 1].texts] == ["none"]
    assert not images_of(fig.axes[-1])                                          # the baseline walk has no mask
    assert _legend_labels(fig) == NAMES + ["ignored"]
    fig = training.plot_stage_walk([plain])
    assert len(fig.axes) == 1 + len(training.STAGE_COLUMNS) and not fig.legends
    with pytest.raises(ValueError, match="no stage walks"):
        training.plot_stage_walk([])
