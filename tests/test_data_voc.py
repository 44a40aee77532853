"""VOC-layout loader: a tiny fake VOC2012 + SBD tree, label derivation, palette helpers, and bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

from slrnet.data.build import build_dataset
from slrnet.data.files import DatasetError, DatasetFileNotFoundError, load_mask, save_palette_png, voc_colormap
from slrnet.data.transforms import MEAN, STD, denormalize
from slrnet.data.voc import VOC_CLASSES, VOCSegmentation

SIZES = {"2007_000032": (50, 40), "2007_000039": (60, 45), "2008_000002": (48, 48), "2008_000003": (40, 56),
         "2009_000001": (64, 44), "2010_000005": (52, 40)}
SEG_TRAIN = ["2007_000032", "2008_000002"]     # VOC2012 train.txt with masks in SegmentationClass
SEG_VAL = ["2007_000039", "2008_000003"]
SBD_ONLY = ["2009_000001", "2010_000005"]      # SBD images: masks only in SegmentationClassAug


def _mask(rng, w, h):
    """Background with two rectangles of random classes and a void border, like a VOC mask."""
    mask = np.zeros((h, w), np.uint8)
    for _ in range(2):
        c = int(rng.integers(1, 21))
        y0, x0 = int(rng.integers(0, h - 12)), int(rng.integers(0, w - 12))
        mask[y0:y0 + 10, x0:x0 + 10] = 255
        mask[y0 + 1:y0 + 9, x0 + 1:x0 + 9] = c
    return mask


def _xml(path, objects):
    body = "".join(f"<object><name>{o}</name><difficult>0</difficult></object>" for o in objects)
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename>{body}</annotation>")


def _labels(mask):
    out = np.zeros(20, np.float32)
    for v in np.unique(mask):
        if 0 < v < 255:
            out[v - 1] = 1
    return out


@pytest.fixture()
def voc(tmp_path):
    """tmp_path/VOC2012 with JPEGImages, SegmentationClass(+Aug), Annotations and the three split lists."""
    root = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "Annotations", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    masks = {}
    for name, (w, h) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        masks[name] = _mask(rng, w, h)
        save_palette_png(masks[name], root / "SegmentationClassAug" / f"{name}.png")
        if name not in SBD_ONLY:
            save_palette_png(masks[name], root / "SegmentationClass" / f"{name}.png")
        _xml(root / "Annotations" / f"{name}.xml", [VOC_CLASSES[v] for v in np.unique(masks[name]) if 0 < v < 255])
    seg = root / "ImageSets/Segmentation"
    (seg / "train.txt").write_text("\n".join(SEG_TRAIN + SBD_ONLY[:1]) + "\n")
    (seg / "val.txt").write_text("\n".join(SEG_VAL) + "\n")
    (seg / "train_aug.txt").write_text("".join(f"/JPEGImages/{n}.jpg /SegmentationClassAug/{n}.png\n"
                                               for n in SEG_TRAIN + SBD_ONLY))
    return root, masks


def test_val_samples_follow_the_contract(voc):
    root, masks = voc
    ds = VOCSegmentation(root, "val")
    assert len(ds) == 2 and ds.class_names == VOC_CLASSES and ds.num_classes == 21
    s = ds[1]
    w, h = SIZES["2007_000039"] if s["name"] == "2007_000039" else SIZES["2008_000003"]
    assert s["name"] == SEG_VAL[1] and s["has_mask"] is True
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, h, w)
    assert s["mask"].dtype == torch.int64 and np.array_equal(s["mask"].numpy(), masks[SEG_VAL[1]])
    assert s["labels"].dtype == torch.float32 and np.array_equal(s["labels"].numpy(), _labels(masks[SEG_VAL[1]]))
    assert ds[-1]["name"] == SEG_VAL[1]
    with pytest.raises(IndexError):
        ds[2]


def test_missing_mask_gives_void_mask_and_xml_labels(voc):
    root, masks = voc
    ds = VOCSegmentation(root, "train")                      # SegmentationClass: the SBD image has no mask
    s = ds[2]
    assert s["name"] == SBD_ONLY[0] and s["has_mask"] is False
    assert (s["mask"] == 255).all()
    assert np.array_equal(s["labels"].numpy(), _labels(masks[SBD_ONLY[0]]))
    assert [ds.label_source(i) for i in range(3)] == ["mask", "mask", "xml"]


def test_two_column_aug_list_and_image_labels(voc):
    root, masks = voc
    ds = VOCSegmentation(root, "train_aug", mask_dir="SegmentationClassAug")
    assert ds.names == SEG_TRAIN + SBD_ONLY and all(ds[i]["has_mask"] for i in range(len(ds)))
    expected = np.stack([_labels(masks[n]) for n in ds.names])
    assert np.array_equal(ds.image_labels(), expected)
    assert np.array_equal(np.stack([ds[i]["labels"].numpy() for i in range(len(ds))]), expected)
    summary = ds.validate()
    assert summary["num_images"] == 4 and summary["num_with_mask"] == 4
    assert sum(summary["class_image_counts"].values()) == expected.sum()


def test_build_dataset_picks_train_aug_and_the_training_transform(voc):
    root, _ = voc
    cfg = {"name": "voc", "root": str(root), "crop_size": 32, "scale": [0.9, 1.0], "mask_dir": None}
    train = build_dataset(cfg, "train", train=True)
    assert train.mask_dir == "SegmentationClassAug" and len(train) == 4
    s = train[0]
    assert s["image"].shape == (3, 32, 32) and s["mask"].shape == (32, 32)
    val = build_dataset({**cfg, "val_list": "val.txt"}, "val", train=False)
    assert val[0]["image"].shape[1:] == val[0]["mask"].shape and len(val) == 2
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=2)))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["labels"].shape == (2, 20)
    assert batch["has_mask"].dtype == torch.bool and batch["name"] == SEG_TRAIN


def test_classes_txt_and_explicit_list_file(voc, tmp_path):
    root, _ = voc
    (root / "classes.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    (tmp_path / "mine.txt").write_text("2007_000032\n")
    ds = VOCSegmentation(root, list_file=tmp_path / "mine.txt")
    assert len(ds) == 1 and ds.class_names == VOC_CLASSES


def test_colormap_palette_roundtrip_and_rgb_masks(tmp_path):
    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert cmap[1].tolist() == [128, 0, 0] and cmap[15].tolist() == [192, 128, 128]
    assert cmap[255].tolist() == [224, 224, 192]
    mask = np.array([[0, 1, 20], [255, 7, 0]], np.uint8)
    path = save_palette_png(mask, tmp_path / "m.png")
    img = Image.open(path)
    assert img.mode == "P" and img.getpalette()[3:6] == [128, 0, 0]
    assert np.array_equal(load_mask(path), mask)
    Image.fromarray(cmap[mask]).save(tmp_path / "rgb.png")          # a colour-coded mask decodes too
    assert np.array_equal(load_mask(tmp_path / "rgb.png"), mask)


def test_denormalize_inverts_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3)).astype(np.uint8)
    x = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(
        STD).view(3, 1, 1)
    out = denormalize(x)
    assert out.dtype == np.uint8 and out.shape == (5, 6, 3) and np.array_equal(out, rgb)


def test_png_images_and_warnings_for_items_without_any_labels(voc):
    root, _ = voc
    name = SEG_VAL[0]
    Image.open(root / "JPEGImages" / f"{name}.jpg").save(root / "JPEGImages" / f"{name}.png")
    (root / "JPEGImages" / f"{name}.jpg").unlink()
    assert VOCSegmentation(root, "val").image_paths[0].suffix == ".png"
    (root / "Annotations" / f"{SBD_ONLY[0]}.xml").unlink()
    with pytest.warns(UserWarning, match="1 of 3 items have neither a mask"):
        ds = VOCSegmentation(root, "train")
    assert ds.label_source(2) == "none" and ds[2]["labels"].sum() == 0
    with pytest.warns(UserWarning, match="SegmentationClassTypo does not exist"):
        VOCSegmentation(root, "val", mask_dir="SegmentationClassTypo")


# -- bad input: each error names the file and what was expected ------------------------------------------

def test_missing_root(tmp_path):
    with pytest.raises(DatasetFileNotFoundError, match="nowhere"):
        VOCSegmentation(tmp_path / "nowhere")


def test_missing_list_names_the_available_splits(voc):
    root, _ = voc
    with pytest.raises(FileNotFoundError, match=r"test\.txt.*train_aug"):
        VOCSegmentation(root, "test")
    with pytest.raises(DatasetFileNotFoundError, match="nolist"):
        VOCSegmentation(root, list_file="nolist.txt")


def test_listed_image_missing(voc):
    root, _ = voc
    (root / "JPEGImages" / "2008_000003.jpg").unlink()
    with pytest.raises(DatasetFileNotFoundError, match="2008_000003.jpg"):
        VOCSegmentation(root, "val")


def test_corrupt_image(voc):
    root, _ = voc
    (root / "JPEGImages" / "2007_000039.jpg").write_bytes(b"this is not a jpeg")
    ds = VOCSegmentation(root, "val")
    with pytest.raises(DatasetError, match="2007_000039.jpg.*corrupt"):
        ds[0]


def test_truncated_image(voc):
    root, _ = voc
    path = root / "JPEGImages" / "2007_000039.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match="2007_000039.jpg"):
        VOCSegmentation(root, "val")[0]


def test_mask_size_differs_from_image(voc):
    root, _ = voc
    save_palette_png(np.zeros((10, 12), np.uint8), root / "SegmentationClass" / "2008_000003.png")
    with pytest.raises(DatasetError, match=r"2008_000003.png.*12x10.*40x56"):
        VOCSegmentation(root, "val")[1]


def test_mask_values_outside_the_class_range(voc):
    root, masks = voc
    bad = masks["2007_000039"].copy()
    bad[0, 0] = 30
    save_palette_png(bad, root / "SegmentationClass" / "2007_000039.png")
    ds = VOCSegmentation(root, "val")
    with pytest.raises(DatasetError, match=r"2007_000039.png has values \[30\]"):
        ds[0]
    with pytest.raises(DatasetError, match="1 of 2 items are invalid"):
        ds.validate()


def test_classes_txt_disagreeing_with_masks(voc):
    root, _ = voc
    (root / "classes.txt").write_text("background\naeroplane\nbicycle\n")
    ds = VOCSegmentation(root, "val")
    assert ds.num_classes == 3
    with pytest.raises(DatasetError, match="classes.txt.*disagrees"):
        ds.image_labels()
    (root / "classes.txt").write_text("background\nbackground\n")
    with pytest.raises(DatasetError, match="unique"):
        VOCSegmentation(root, "val")


def test_unknown_object_name_in_annotation(voc):
    root, _ = voc
    _xml(root / "Annotations" / f"{SBD_ONLY[0]}.xml", ["unicorn"])
    with pytest.raises(DatasetError, match=f"{SBD_ONLY[0]}.xml.*unicorn"):
        VOCSegmentation(root, "train")[2]


def test_malformed_and_empty_list_files(voc):
    root, _ = voc
    (root / "ImageSets/Segmentation/bad.txt").write_text("a b c\n")
    with pytest.raises(DatasetError, match=r"bad.txt:1"):
        VOCSegmentation(root, "bad")
    (root / "ImageSets/Segmentation/empty.txt").write_text("\n")
    with pytest.raises(DatasetError, match="empty"):
        VOCSegmentation(root, "empty")


# -- tour helpers (statistics and figures used by notebook 00) ----------------------------------------

def test_tour_statistics_match_the_masks(voc):
    from slrnet.analysis import dataset_statistics as tour

    root, masks = voc
    ds = VOCSegmentation(root, "train")                       # two masks + one XML-only image
    stats = tour.dataset_statistics(ds)
    expected = np.stack([_labels(masks[n]) for n in ds.names]).sum(0)
    assert [stats["class_image_counts"][c] for c in VOC_CLASSES[1:]] == expected.astype(int).tolist()
    assert stats["num_scanned_with_mask"] == 2 and stats["num_scanned"] == 3
    m = masks[SEG_TRAIN[0]]
    area = stats["per_image"]["area_fraction"][0]
    for c in np.unique(m):
        if c < 255:
            assert area[c] == pytest.approx((m == c).mean())
    pixels = sum(masks[n].size for n in SEG_TRAIN)
    assert stats["pixel_share"]["void"] == pytest.approx(sum((masks[n] == 255).sum() for n in SEG_TRAIN) / pixels)
    assert "per_image" not in tour.summary(stats)
    assert tour.split_sizes(root) == {"train": 3, "train_aug": 4, "val": 2}


def test_tour_figures_draw_the_statistics(voc):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slrnet.analysis.dataset_statistics import dataset_statistics
    from slrnet.data.transforms import TrainTransform, denormalize
    from slrnet.viz import dataset as figs
    from slrnet.viz.common import colorize

    root, masks = voc
    ds = VOCSegmentation(root, "train")
    stats = dataset_statistics(ds)
    # samples: the images as they are, then the masks' colours over them (void white)
    fig = figs.plot_samples(ds, [0, 2])
    image_axes = fig.axes[:2]
    np.testing.assert_array_equal(image_axes[0].get_images()[0].get_array(), denormalize(ds[0]["image"]))
    mask = ds[0]["mask"].numpy()
    over = np.asarray(fig.axes[2].get_images()[0].get_array())
    assert (over[mask == 255] == 255).all()
    fg = (mask > 0) & (mask < 255)
    assert np.abs(over[fg].astype(int) - colorize(mask)[fg].astype(int)).mean() < 120   # blended towards the class colour
    plt.close(fig)
    # class frequency: one bar per foreground class, the statistics' values, in the classes' colours
    fig = figs.plot_class_frequency(stats)
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == pytest.approx(list(stats["class_image_frequency"].values()))
    np.testing.assert_allclose(bars[0].get_facecolor()[:3], colorize(np.array([[1]]))[0, 0] / 255)
    plt.close(fig)
    # object sizes: one box per class present, on the class's position
    fig = figs.plot_object_sizes(stats)
    present = [c for c in range(len(VOC_CLASSES) - 1) if np.isfinite(stats["per_image"]["area_fraction"][:, c + 1]).any()]
    assert len(fig.axes[0].get_xticklabels()) == len(VOC_CLASSES) - 1 and present
    medians = [line for line in fig.axes[0].get_lines() if line.get_color() in ("C1", "#ff7f0e")]
    assert len(medians) == len(present)
    plt.close(fig)
    fig = figs.plot_class_legend(ds.class_names)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(ds.class_names) + ["void"]
    plt.close(fig)
    fig = figs.plot_augmented_crops(ds, 0, TrainTransform(24, scale=(0.5, 1.0)), num_crops=2)
    assert len(fig.axes) == 6 and fig.axes[1].get_images()[0].get_array().shape[:2] == (24, 24)
    plt.close(fig)


def test_cache_returns_the_same_samples_and_keeps_them_unchanged(voc):
    """cache=True: the same bits as reading the files, the files read once, the cached pixels never modified."""
    from slrnet.data.transforms import TrainTransform

    root, _ = voc

    def make(cache):
        t = TrainTransform(crop_size=32, generator=torch.Generator().manual_seed(0))
        return VOCSegmentation(root, "train_aug", mask_dir=None, transform=t, cache=cache)

    plain, cached = make(False), make(True)
    for _ in range(2):                                                   # the second pass reads the cache
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
            assert torch.equal(a["labels"], b["labels"]) and a["has_mask"] == b["has_mask"]
    assert sorted(cached._raw_cache) == list(range(len(cached)))
    cached.load_raw = None                                               # no file is read again
    before = {i: tuple(np.copy(v) if isinstance(v, np.ndarray) else v for v in raw)
              for i, raw in cached._raw_cache.items()}
    cached[0]["labels"].zero_()
    cached[1]
    for i, raw in cached._raw_cache.items():
        assert all(np.array_equal(u, v) for u, v in zip(raw, before[i]))
    built = build_dataset({"name": "voc", "root": str(root), "cache": True}, "val", train=False)
    assert built.cache and not build_dataset({"name": "voc", "root": str(root)}, "val", train=False).cache
