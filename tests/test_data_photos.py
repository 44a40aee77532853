"""The embedded "photos" dataset: real photographs from installed packages, determinism, layout, masks, caching."""
import json

import numpy as np
import pytest

from slrnet.data import build_dataset
from slrnet.data import photo_sources as S
from slrnet.data.generated import PRETRAIN_SPLIT_CODE
from slrnet.data.photos import (AREA_RANGE, PHOTOS, PHOTOS_CLASSES, SCENES, ensure_photos_dataset,
                                generate_photos_dataset, render_sample, silhouette)
from slrnet.data.voc import VOCSegmentation, load_mask

TINY = dict(image_size=64, num_train=6, num_val=4)


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_source_photograph_is_on_disk_and_is_the_recorded_one():
    photos = S.load_sources()
    assert set(photos) == set(PHOTOS_CLASSES[1:]) | set(SCENES)
    assert not set(PHOTOS_CLASSES) & set(SCENES)                  # no photograph is both object and scene
    for name, rgb in photos.items():
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert 100 <= min(rgb.shape[:2]) <= S.MAX_SIDE, name
        assert rgb.std() > 10, name                                 # a photograph, not a flat image
    assert len(set(S.source_digests().values())) == len(photos)     # all different files


def test_a_changed_photograph_is_refused_with_its_file_named(monkeypatch, tmp_path):
    source = S.OBJECT_SOURCES[0]
    fake = tmp_path / "pkg" / source.path
    fake.parent.mkdir(parents=True)
    from PIL import Image
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(fake)
    monkeypatch.setattr(S.Source, "file", lambda self: tmp_path / "pkg" / self.path)
    with pytest.raises(S.SourceMissing, match=rf"{fake.name}.*differ from the recorded photograph"):
        S._read(source)
    monkeypatch.setattr(S.Source, "file", lambda self: tmp_path / "nothing" / self.path)
    with pytest.raises(S.SourceMissing, match="not found; expected the skimage package"):
        S._read(source)


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    a = _files(generate_photos_dataset(tmp_path / "a", seed=3, **TINY))
    b = _files(generate_photos_dataset(tmp_path / "b", seed=3, **TINY))
    c = _files(generate_photos_dataset(tmp_path / "c", seed=4, **TINY))
    assert len(a) == 6 + 6 + 4 + 4 + 2 + 2  # images, masks, lists, classes.txt, meta.json
    assert a == b
    assert set(a) == set(c)
    assert sum(a[k] != c[k] for k in a if k.startswith("JPEGImages")) == 10


def test_layout_classes_meta_and_the_voc_loader(tmp_path):
    root = generate_photos_dataset(tmp_path / "d", seed=1, **TINY)
    assert (root / "classes.txt").read_text().split() == list(PHOTOS_CLASSES)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["dataset"] == "photos" and meta["options"] == PHOTOS.options(seed=1, **TINY)
    assert meta["sources"] == S.source_digests()
    ds = VOCSegmentation(root, "train")
    assert tuple(ds.class_names) == PHOTOS_CLASSES and len(ds) == 6
    train = build_dataset({"name": "photos", "root": str(root), "generate": dict(seed=1, **TINY), "crop_size": 48,
                           "scale": [0.9, 1.0]}, "train", train=True)
    item = train[0]
    assert item["image"].shape == (3, 48, 48) and item["labels"].shape == (len(PHOTOS_CLASSES) - 1,)


def test_masks_have_labels_a_void_band_and_a_range_of_object_sizes():
    areas, counts = [], []
    for i in range(60):
        image, mask, info = render_sample(np.random.default_rng([5, 0, i]), 128)
        assert image.shape == (128, 128, 3) and mask.shape == (128, 128)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(len(PHOTOS_CLASSES))) | {255} and 0 in values
        assert info["scene"] in SCENES and 1 <= len(info["instances"]) <= 3
        counts.append(len(values - {0, 255}))
        areas += [inst["area"] for inst in info["instances"]]
        inner = mask[1:-1, 1:-1]
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            nb = mask[1 + dy:mask.shape[0] - 1 + dy, 1 + dx:mask.shape[1] - 1 + dx]
            assert not np.any((inner != 255) & (nb != 255) & (inner != nb))
    assert min(counts) >= 1
    # small and large objects alike: the log-uniform area range shows at both ends
    assert min(areas) < 0.04 and max(areas) > 0.15, (min(areas), max(areas))


def test_silhouettes_cover_the_asked_area():
    rng = np.random.default_rng(0)
    for area in (AREA_RANGE[0], 0.1, AREA_RANGE[1]):
        coverage, (y0, x0, y1, x1) = silhouette(rng, 128, area)
        assert coverage.shape == (y1 - y0, x1 - x0) and 0 <= coverage.min() and coverage.max() <= 1
        assert abs(coverage.sum() / 128 ** 2 - area) < 0.35 * area     # a sliver may leave the image


def test_the_pretraining_stream_is_not_the_dataset():
    pre, _ = PHOTOS.sample(PRETRAIN_SPLIT_CODE, 0, image_size=64)
    for split in ("train", "val"):
        other, _ = PHOTOS.sample(split, 0, image_size=64)
        assert not np.array_equal(pre, other)


def test_ensure_reuses_and_never_touches_a_foreign_folder(tmp_path):
    root = ensure_photos_dataset(tmp_path / "p", seed=0, **TINY)
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert ensure_photos_dataset(root, seed=0, **TINY) == root and (root / "meta.json").stat().st_mtime_ns == stamp
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="no meta.json from the photos generator"):
        ensure_photos_dataset(foreign, **TINY)
    with pytest.raises(ValueError, match="photos dataset: unknown option"):
        ensure_photos_dataset(tmp_path / "x", size=3)
    assert load_mask(root / "SegmentationClass" / "val_000000.png").shape == (64, 64)
