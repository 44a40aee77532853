"""The embedded "shapes" generator: determinism, masks, caching, and loading through the VOC loader."""
import json
import os

import numpy as np
import pytest

from slrnet.data.synthetic import (SHAPES_CLASSES, ensure_default_dataset, full_options, generate_dataset,
                                   render_sample, void_band)
from slrnet.data.voc import VOCSegmentation, load_mask

TINY = dict(image_size=64, num_train=6, num_val=4)


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    a = _files(generate_dataset(tmp_path / "a", seed=3, **TINY))
    b = _files(generate_dataset(tmp_path / "b", seed=3, **TINY))
    c = _files(generate_dataset(tmp_path / "c", seed=4, **TINY))
    assert len(a) == 6 + 6 + 4 + 4 + 2 + 2  # images, masks, lists, classes.txt, meta.json
    assert a == b
    assert set(a) == set(c)
    differing = [k for k in a if k.startswith("JPEGImages") and a[k] != c[k]]
    assert len(differing) == 10


def test_images_do_not_depend_on_the_counts(tmp_path):
    small = _files(generate_dataset(tmp_path / "s", seed=0, image_size=64, num_train=2, num_val=1))
    big = _files(generate_dataset(tmp_path / "b", seed=0, image_size=64, num_train=4, num_val=3))
    for key in ("JPEGImages/train_000001.jpg", "SegmentationClass/val_000000.png"):
        assert small[key] == big[key]


def test_layout_classes_and_meta(tmp_path):
    root = generate_dataset(tmp_path / "d", seed=1, **TINY)
    assert (root / "classes.txt").read_text().split() == list(SHAPES_CLASSES)
    assert (root / "ImageSets/Segmentation/train.txt").read_text().split() == [f"train_{i:06d}" for i in range(6)]
    meta = json.loads((root / "meta.json").read_text())
    assert meta["options"] == full_options(seed=1, **TINY) and meta["seed"] == 1 and "version" in meta


def test_masks_have_classes_void_band_and_one_to_three_objects(tmp_path):
    root = generate_dataset(tmp_path / "d", seed=2, image_size=96, num_train=12, num_val=1)
    for name in (root / "ImageSets/Segmentation/train.txt").read_text().split():
        mask = load_mask(root / "SegmentationClass" / f"{name}.png")
        values = set(np.unique(mask).tolist())
        assert values <= set(range(len(SHAPES_CLASSES))) | {255}
        assert 255 in values and 0 in values and len(values - {0, 255}) >= 1
        # every labelled pixel next to a different label must have been voided
        inner = mask[1:-1, 1:-1]
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            nb = mask[1 + dy:mask.shape[0] - 1 + dy, 1 + dx:mask.shape[1] - 1 + dx]
            assert not np.any((inner != 255) & (nb != 255) & (inner != nb))


def test_render_sample_keeps_every_instance_visible():
    for i in range(30):
        image, mask, instances = render_sample(np.random.default_rng([9, i]), 128, 3, 1)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8 and mask.shape == (128, 128)
        assert 1 <= len(instances) <= 3
        present = {SHAPES_CLASSES[v] for v in np.unique(mask).tolist() if 0 < v < 255}
        assert present == {inst["class"] for inst in instances}


def test_void_band_width():
    label = np.zeros((9, 9), np.uint8)
    label[3:6, 3:6] = 2
    out = void_band(label, 1)
    assert out[4, 4] == 2  # the centre of a 3x3 object has no differing neighbour
    assert out[3, 3] == 255 and out[2, 2] == 255 and out[1, 1] == 0 and out[0, 0] == 0
    assert (void_band(label, 2)[2:7, 2:7] == 255).all()
    assert np.array_equal(void_band(label, 0), label)


def test_ensure_reuses_cache_and_regenerates_on_new_options(tmp_path):
    root = tmp_path / "shapes"
    assert ensure_default_dataset(root, seed=0, **TINY) == root
    stamp = os.stat(root / "meta.json").st_mtime_ns, os.stat(root / "JPEGImages/train_000000.jpg").st_ino
    ensure_default_dataset(root, seed=0, **TINY)
    assert (os.stat(root / "meta.json").st_mtime_ns, os.stat(root / "JPEGImages/train_000000.jpg").st_ino) == stamp
    ensure_default_dataset(root, seed=0, image_size=64, num_train=3, num_val=2)
    assert len((root / "ImageSets/Segmentation/train.txt").read_text().split()) == 3
    assert not (root / "JPEGImages/train_000005.jpg").exists()
    assert json.loads((root / "meta.json").read_text())["options"]["num_train"] == 3
    (root / "JPEGImages/train_000001.jpg").unlink()          # an incomplete cache is regenerated too
    ensure_default_dataset(root, seed=0, image_size=64, num_train=3, num_val=2)
    assert (root / "JPEGImages/train_000001.jpg").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]   # no temporary folders left behind


def test_ensure_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine"):
        ensure_default_dataset(tmp_path / "mine", **TINY)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"
    (tmp_path / "mine" / "meta.json").write_text('{"generator": "someone else"}')
    with pytest.raises(FileExistsError, match="mine"):
        ensure_default_dataset(tmp_path / "mine", **TINY)


def test_unknown_or_bad_options_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_imgs"):
        ensure_default_dataset(tmp_path / "x", num_imgs=3)
    with pytest.raises(ValueError, match="image_size"):
        full_options(image_size=8)


def test_loads_through_the_generic_voc_loader(tmp_path):
    root = ensure_default_dataset(tmp_path / "shapes", seed=5, **TINY)
    ds = VOCSegmentation(root, "val")
    assert ds.class_names == SHAPES_CLASSES and ds.num_classes == 7 and len(ds) == 4
    sample = ds[0]
    assert sample["image"].shape == (3, 64, 64) and sample["has_mask"]
    assert sample["labels"].sum() >= 1
    assert ds.validate()["num_with_mask"] == 4


def test_build_dataset_generates_shapes_and_resolves_data_roots(tmp_path, monkeypatch):
    from slrnet.data.build import build_dataset, resolve_data_root

    monkeypatch.setenv("SLRNET_DATA", str(tmp_path / "store"))
    assert resolve_data_root("data/shapes_tiny") == tmp_path / "store" / "shapes_tiny"
    cfg = {"name": "shapes", "root": "data/shapes_tiny", "crop_size": 48, "scale": [0.9, 1.0],
           "generate": {"image_size": 64, "num_train": 4, "num_val": 2, "seed": 1}}
    train = build_dataset(cfg, "train", train=True)
    val = build_dataset(cfg, "val", train=False)
    assert train.root == tmp_path / "store" / "shapes_tiny" and len(train) == 4 and len(val) == 2
    assert train[0]["image"].shape == (3, 48, 48) and val[0]["image"].shape == (3, 64, 64)
    assert train.class_names == SHAPES_CLASSES
