"""The evaluation and factorisation figures draw the data they are given (the arrays in the axes, the bar
heights, the lines), into the axes they are given."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from slrnet import cmf  # noqa: E402
from slrnet.viz import evaluation as E  # noqa: E402
from slrnet.viz import factorization as V  # noqa: E402
from slrnet.viz.common import colorize, to_rgb  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def arrays(ax) -> list[np.ndarray]:
    return [np.asarray(im.get_array()) for im in ax.get_images()]


def test_per_class_iou_bars_are_the_values():
    iou = {"background": 0.9, "circle": 0.5, "square": None}
    fig = E.plot_per_class_iou(iou)
    bars = fig.axes[0].patches
    assert [b.get_width() for b in bars] == pytest.approx([0.9, 0.5, 0.0])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.90", "0.50", "absent"] and "mean 0.700" in fig.axes[0].get_title()
    fig = E.plot_per_class_iou(iou, reference={"background": 0.8, "circle": 0.2, "square": 0.1})
    widths = [b.get_width() for b in fig.axes[0].patches]
    assert widths == pytest.approx([0.9, 0.5, 0.0, 0.8, 0.2, 0.1])


def test_confusion_matrix_is_row_normalised():
    matrix = np.array([[8, 2], [1, 3]])
    fig, ax = plt.subplots()
    assert E.plot_confusion_matrix(matrix, ["bg", "x"], ax=ax) is fig
    np.testing.assert_allclose(arrays(ax)[0], [[0.8, 0.2], [0.25, 0.75]])
    assert [t.get_text() for t in ax.texts] == ["0.80", "0.20", "0.25", "0.75"]
    np.testing.assert_allclose(arrays(E.plot_confusion_matrix(matrix, ["bg", "x"], normalize=False).axes[0])[0], matrix)


def test_prediction_rows_and_pseudo_label_evolution():
    gen = torch.Generator().manual_seed(0)
    gt, pred = torch.randint(0, 4, (6, 5), generator=gen).numpy(), torch.randint(0, 4, (6, 5), generator=gen).numpy()
    rgb = np.full((6, 5, 3), 100, np.uint8)
    fig = E.plot_prediction_rows([(rgb, gt, pred, "a"), (rgb, pred, gt, "b")])
    panels = [arrays(ax)[0] for ax in fig.axes]
    np.testing.assert_array_equal(panels[0], rgb)
    np.testing.assert_array_equal(panels[1], colorize(gt))
    np.testing.assert_array_equal(panels[2], colorize(pred))
    np.testing.assert_array_equal(panels[4], colorize(pred))
    assert fig.axes[3].get_ylabel() == "b"
    images = torch.randn(2, 3, 6, 5, generator=gen)
    history = [(e, torch.randint(0, 4, (2, 6, 5), generator=gen)) for e in range(10)]
    fig = E.plot_pseudo_label_evolution(images, history, max_epochs=3)
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["image", "epoch 1", "epoch 5", "epoch 10"]     # first, middle (4.5 rounds to even), last
    np.testing.assert_array_equal(arrays(fig.axes[4])[0], to_rgb(images[1]))
    np.testing.assert_array_equal(arrays(fig.axes[7])[0], colorize(history[9][1][1]))
    with pytest.raises(ValueError, match="empty"):
        E.plot_pseudo_label_evolution(images, [])


def test_predictions_come_from_the_predictor():
    class Fixed:
        def predict(self, image, labels=None):
            return torch.full(image.shape[-2:], 2, dtype=torch.long)

    samples = [{"image": torch.zeros(3, 4, 4), "mask": torch.ones(4, 4, dtype=torch.long), "name": f"s{i}"}
               for i in range(2)]
    fig = E.plot_predictions(Fixed(), samples, [1])
    np.testing.assert_array_equal(arrays(fig.axes[2])[0], colorize(np.full((4, 4), 2)))
    assert fig.axes[0].get_ylabel() == "s1"


@pytest.fixture(scope="module")
def planted():
    return cmf.planted_views(num_atoms=3, channels=6, shapes=((8, 8), (4, 4)), noise=0.02, seed=0)


def test_code_maps_draw_each_atom_and_the_argmax(planted):
    codes = [z[0] for z in planted.codes]
    fig = V.plot_code_maps(codes, planted.shapes)
    assert len(fig.axes) == 2 * 4
    for v, (z, hw) in enumerate(zip(codes, planted.shapes)):
        maps = z.reshape(3, *hw).numpy()
        row = fig.axes[4 * v: 4 * v + 4]
        np.testing.assert_array_equal(arrays(row[0])[0], maps.argmax(0))
        for k in range(3):
            np.testing.assert_allclose(arrays(row[1 + k])[0], maps[k])


def test_objectives_error_vs_rank_and_sweep_draw_their_numbers(planted):
    res = cmf.cvlr_factorize(planted.views, 3, num_iters=4, temperature=0.05)
    svd = cmf.svd_reconstruct(planted.views, 3)
    fig = V.plot_objectives({"CVLR": res}, svd=svd)
    line, optimum = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), res.relative_error[:, 0].numpy())
    assert list(line.get_xdata()) == [1, 2, 3, 4]
    assert optimum.get_ydata()[0] == pytest.approx(float(svd.relative_error[-1, 0]))
    fig = V.plot_error_vs_rank([1, 2], {"CVLR": [0.5, 0.2], "SVD": [0.4, 0.1]})
    assert [list(line.get_ydata()) for line in fig.axes[0].get_lines()] == [[0.5, 0.2], [0.4, 0.1]]
    fig = V.plot_sweep([[0.1, 0.2], [0.3, 0.4]], [1, 5], [0.1, 1.0], "T", "tau", "error")
    np.testing.assert_allclose(arrays(fig.axes[0])[0], [[0.1, 0.2], [0.3, 0.4]])
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.100", "0.200", "0.300", "0.400"]
    fig = V.plot_atoms({"planted": planted.atoms[0]})
    np.testing.assert_allclose(arrays(fig.axes[0])[0], planted.atoms[0].numpy())


def test_cross_view_agreement_panels(planted):
    z1, z2 = (z[0].reshape(3, *hw) for z, hw in zip(planted.codes, planted.shapes))
    fig = V.plot_cross_view_agreement(z1, z2)
    a1, a2, agree = (arrays(ax)[0] for ax in fig.axes)
    np.testing.assert_array_equal(a1, z1.argmax(0).numpy())
    np.testing.assert_array_equal(agree, a1 == a2)
    share = float(cmf.cross_view_agreement(z1[None], z2[None]))
    assert fig.axes[2].get_title() == f"agree: {share:.1%}" and share == pytest.approx((a1 == a2).mean())


def test_label_columns_and_miou_bars():
    gen = torch.Generator().manual_seed(1)
    rgb = [np.full((4, 5, 3), v, np.uint8) for v in (10, 200)]
    gt = [torch.randint(0, 3, (4, 5), generator=gen).numpy() for _ in range(2)]
    pseudo = [np.where(g == 1, 255, g) for g in gt]
    fig = E.plot_label_columns(rgb, {"ground truth": gt, "pseudo label": pseudo}, captions=["a", "b"])
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "ground truth", "pseudo label"]
    np.testing.assert_array_equal(arrays(fig.axes[3])[0], rgb[1])
    np.testing.assert_array_equal(arrays(fig.axes[5])[0], colorize(pseudo[1]))
    assert fig.axes[3].get_ylabel() == "b"
    with pytest.raises(ValueError, match="one map per image"):
        E.plot_label_columns(rgb, {"x": gt[:1]})
    fig = E.plot_miou_bars({"single stage": 0.5, "+ CRF": 0.55, "second stage": 0.6})
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx([0.5, 0.55, 0.6])
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.500", "0.550", "0.600"]


def test_grouped_miou_bars_one_colour_per_setting():
    table = {"single stage": {"no CRF": 0.8, "+ CRF": 0.9}, "second stage": {"no CRF": 0.85, "+ CRF": 0.88},
             "ceiling": {"no CRF": 0.95}}
    fig = E.plot_miou_groups(table, title="val")
    ax = fig.axes[0]
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx([0.8, 0.85, 0.95, 0.9, 0.88])   # setting by setting
    assert len({tuple(b.get_facecolor()) for b in bars[:3]}) == 1 != len({bars[0].get_facecolor(), bars[3].get_facecolor()})
    assert bars[0].get_x() < bars[3].get_x() < bars[1].get_x()                 # a group's bars side by side
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no CRF", "+ CRF"] and ax.get_title() == "val"
    assert [t.get_text() for t in ax.texts] == ["0.800", "0.850", "0.950", "0.900", "0.880"]
    with pytest.raises(ValueError, match="nothing to draw"):
        E.plot_miou_groups({})


def test_confusion_before_after_draws_both_and_their_difference():
    before, after = np.array([[8, 2], [1, 3]]), np.array([[9, 1], [0, 4]])
    fig = E.plot_confusion_before_after(before, after, ["bg", "x"])
    panels = [ax for ax in fig.axes if ax.get_images()][:3]
    np.testing.assert_allclose(arrays(panels[0])[0], [[0.8, 0.2], [0.25, 0.75]])
    np.testing.assert_allclose(arrays(panels[1])[0], [[0.9, 0.1], [0.0, 1.0]])
    np.testing.assert_allclose(arrays(panels[2])[0], [[0.1, -0.1], [-0.25, 0.25]])
    assert [t.get_text() for t in panels[2].texts] == ["+0.10", "-0.10", "-0.25", "+0.25"]
    assert panels[0].get_title().startswith("without CRF") and panels[1].get_title().startswith("with CRF")


def test_crf_before_after_rows_and_change_map():
    gt = np.array([[0, 1, 1], [0, 255, 2]])
    before = np.array([[1, 1, 0], [0, 0, 2]])
    after = np.array([[0, 1, 1], [2, 2, 2]])
    change = E.crf_change_map(gt, before, after)
    c = E.CRF_CHANGE_COLOURS
    np.testing.assert_allclose(change[0, 0], c["fixed by the CRF"])          # 1 -> 0, truth 0
    np.testing.assert_allclose(change[0, 1], [1, 1, 1])                      # unchanged
    np.testing.assert_allclose(change[0, 2], c["fixed by the CRF"])
    np.testing.assert_allclose(change[1, 0], c["broken by the CRF"])         # 0 -> 2, truth 0
    np.testing.assert_allclose(change[1, 1], c["changed, not scored (void)"])
    rgb = np.full((2, 3, 3), 90, np.uint8)
    fig = E.plot_crf_before_after([(rgb, gt, before, after, "img a\n0.5 -> 0.9"), (rgb, gt, after, before, "b")],
                                  class_names=["bg", "x", "y"])
    assert len(fig.axes) == 10
    assert [ax.get_title() for ax in fig.axes[:5]] == ["image", "ground truth", "without CRF", "with CRF",
                                                       "what the CRF changed"]
    np.testing.assert_array_equal(arrays(fig.axes[2])[0], colorize(before))
    np.testing.assert_array_equal(arrays(fig.axes[3])[0], colorize(after))
    np.testing.assert_array_equal(arrays(fig.axes[7])[0], colorize(after))      # row 2 swaps them
    assert fig.axes[5].get_ylabel() == "b"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:3] == ["bg", "x", "y"] and "fixed by the CRF" in labels
    with pytest.raises(ValueError, match="no rows"):
        E.plot_crf_before_after([])


def test_best_worst_titles_name_the_sides():
    rgb = np.zeros((3, 3, 3), np.uint8)
    row = (rgb, np.zeros((3, 3), int), np.ones((3, 3), int), "a")
    fig = E.plot_best_worst([row], [row, row], titles=("median", "worst"))
    assert fig.axes[0].get_title() == "median: image" and fig.axes[3].get_title() == "worst: image"


def test_cooccurrence_figure_draws_the_conditional_shares():
    from slrnet.analysis.dataset_statistics import class_cooccurrence
    from slrnet.viz import dataset as D

    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    stats = {"class_names": ["background", "a", "b", "c"], "cooccurrence": class_cooccurrence(labels).tolist(),
             "num_scanned": 5, "split": "train"}
    fig, ax = plt.subplots()
    assert D.plot_cooccurrence(stats, ax=ax) is fig
    shown = np.ma.filled(arrays(ax)[0].astype(float), np.nan)
    expected = [[np.nan, 2 / 3, 1 / 3], [2 / 3, np.nan, 1 / 3], [1, 1, np.nan], [3 / 5, 3 / 5, 1 / 5]]
    np.testing.assert_allclose(shown, expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (3)", "b (3)", "c (1)", "all images"]
    assert ax.get_images()[0].get_clim() == (0, 1.0)                # the largest share here is 1
    low = {**stats, "cooccurrence": class_cooccurrence(np.array([[1, 0, 0]] * 9 + [[1, 1, 1]] * 1)).tolist(),
           "num_scanned": 10}
    fig2, ax2 = plt.subplots()
    D.plot_cooccurrence(low, ax=ax2)
    assert ax2.get_images()[0].get_clim()[1] == pytest.approx(1.0)  # c with a and b: 1.0 again
    shares = {**stats, "cooccurrence": [[30, 6, 5], [6, 30, 7], [5, 7, 30]], "num_scanned": 100}
    fig3, ax3 = plt.subplots()
    D.plot_cooccurrence(shares, ax=ax3)                             # shares 0.17-0.30: the scale follows them
    assert ax3.get_images()[0].get_clim()[1] == pytest.approx(0.30 * 1.1)
    with pytest.raises(ValueError, match="does not match"):
        D.plot_cooccurrence({**stats, "class_names": ["background", "a"]})


def test_samples_show_class_colours_and_their_legend():
    from slrnet.viz import dataset as D

    class Tiny:
        class_names = ["background", "a", "b"]

        def __getitem__(self, i):
            mask = torch.zeros(6, 5, dtype=torch.long)
            mask[1:3, 1:3] = 1 + i
            mask[0, 0] = 255
            return {"image": torch.randn(3, 6, 5), "mask": mask, "labels": torch.tensor([1.0 - i, float(i)]),
                    "name": f"s{i}", "has_mask": True}

    fig = D.plot_samples(Tiny(), [0, 1])
    mask = Tiny()[1]["mask"].numpy()
    shown = arrays(fig.axes[3])[0]
    fg = (mask > 0) & (mask < 255)
    np.testing.assert_array_equal(shown[fg], colorize(mask)[fg])
    assert (shown[mask == 255] == 255).all()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["background (the scene, darkened)", "a", "b",
                                                                  "void (not scored)"]
    assert not D.plot_samples(Tiny(), [0], legend=False).legends
