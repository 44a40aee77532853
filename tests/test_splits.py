"""Semi-supervised splits: labelled subset by list or by seeded ratio, no pixel-label leak, oversampling."""
import warnings
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from slrnet.config import validate
from slrnet.data import (DatasetError, SemiSupervisedSplit, VOCSegmentation, build_semi_dataset,
                         ensure_default_dataset, select_labelled)
from slrnet.data.files import VOID

TINY_DATA = {"num_train": 20, "num_val": 2, "image_size": 32}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return ensure_default_dataset(tmp_path_factory.mktemp("data") / "shapes", **TINY_DATA)


@pytest.fixture(scope="module")
def train(root):
    return VOCSegmentation(root, "train")          # ValTransform: deterministic samples


def test_labelled_list_selects_those_names(root, train, tmp_path):
    picked = [train.names[i] for i in (7, 2, 11)]
    names_file = tmp_path / "labelled.txt"
    names_file.write_text(f"{picked[0]}\n\n/JPEGImages/{picked[1]}.jpg /SegmentationClass/{picked[1]}.png\n{picked[2]}\n")
    assert select_labelled(train, labelled_list=names_file) == [2, 7, 11]
    (root / "ImageSets/Segmentation/few.txt").write_text(picked[0] + "\n")   # found relative to the root too
    assert select_labelled(train, labelled_list="few.txt") == [7]
    names_file.write_text("not_an_image\n" + picked[0] + "\n")
    with pytest.raises(DatasetError, match="not_an_image"):
        select_labelled(train, labelled_list=names_file)
    with pytest.raises(FileNotFoundError, match="labelled_list"):
        select_labelled(train, labelled_list=tmp_path / "missing.txt")


def test_ratio_split_is_deterministic_by_seed(train):
    a = select_labelled(train, labelled_ratio=0.25, seed=1)
    assert a == select_labelled(train, labelled_ratio=0.25, seed=1)
    assert len(a) == 5 and a == sorted(set(a)) and all(0 <= i < len(train) for i in a)
    others = {tuple(select_labelled(train, labelled_ratio=0.25, seed=s)) for s in range(2, 6)}
    assert len(others | {tuple(a)}) > 1                       # the seed changes the draw
    assert len(select_labelled(train, labelled_ratio=0.001)) == 1   # at least one image
    with pytest.raises(ValueError, match="exactly one"):
        select_labelled(train)
    with pytest.raises(ValueError, match="exactly one"):
        select_labelled(train, labelled_list="x.txt", labelled_ratio=0.1)
    with pytest.raises(ValueError, match="labelled_ratio"):
        select_labelled(train, labelled_ratio=1.5)


def test_ratio_split_only_draws_images_that_have_masks(root, tmp_path):
    import shutil
    copy = tmp_path / "partial"
    shutil.copytree(root, copy)
    names = (copy / "ImageSets/Segmentation/train.txt").read_text().split()
    for name in names[:15]:                                  # SBD-like: most images without a mask
        (copy / "SegmentationClass" / f"{name}.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # "neither a mask nor Annotations" warning
        ds = VOCSegmentation(copy, "train")
    assert select_labelled(ds, labelled_ratio=0.25, seed=0) == list(range(15, 20))
    with pytest.raises(DatasetError, match="only 5"):
        select_labelled(ds, labelled_ratio=0.5)
    (tmp_path / "l.txt").write_text(names[0] + "\n")
    with pytest.raises(DatasetError, match="no mask"):
        select_labelled(ds, labelled_list=tmp_path / "l.txt")


@pytest.mark.parametrize("mode", ["image_labels", "hidden"])
def test_no_pixel_label_leaks_into_the_unlabelled_part(train, mode):
    labelled = [1, 4, 9]
    split = SemiSupervisedSplit(train, labelled, unlabelled=mode)
    assert len(split) == len(train) and split.unlabelled_indices == [i for i in range(20) if i not in labelled]
    leaked_before = 0
    for i in range(len(split)):
        s, original = split[i], train[i]
        assert torch.equal(s["image"], original["image"]) and s["name"] == original["name"]
        if i in labelled:
            assert s["has_mask"] and s["has_labels"]
            assert torch.equal(s["mask"], original["mask"]) and torch.equal(s["labels"], original["labels"])
            continue
        leaked_before += int((original["mask"] != VOID).any())   # there was something to hide
        assert not s["has_mask"] and bool((s["mask"] == VOID).all()) and s["mask"].shape == original["mask"].shape
        if mode == "hidden":
            assert not s["has_labels"] and not s["labels"].any()
        else:
            assert s["has_labels"] and torch.equal(s["labels"], original["labels"])
    assert leaked_before == 17
    # and through a DataLoader batch, as the trainer sees it
    for batch in DataLoader(split, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(0)):
        unl = ~batch["has_mask"]
        assert bool((batch["mask"][unl] == VOID).all())
        assert batch["has_mask"].sum() == sum(n in {train.names[i] for i in labelled} for n in batch["name"])


def test_oversampling_repeats_only_labelled_items(train):
    labelled = [0, 5, 6]
    split = SemiSupervisedSplit(train, labelled, unlabelled="hidden", oversample_rate=7)
    counts = Counter(split.index)
    assert len(split) == 20 + 3 * 6 and split.num_labelled_items == 21
    assert all(counts[i] == (7 if i in labelled else 1) for i in range(20))
    assert sum(split.is_labelled(i) for i in range(len(split))) == 21
    only = SemiSupervisedSplit(train, labelled, unlabelled="drop", oversample_rate=2)
    assert sorted(only.index) == [0, 0, 5, 5, 6, 6] and only.unlabelled_indices == []
    assert all(only[i]["has_mask"] for i in range(len(only)))
    with pytest.raises(ValueError, match="oversample_rate"):
        SemiSupervisedSplit(train, labelled, oversample_rate=0)
    with pytest.raises(ValueError, match="unlabelled"):
        SemiSupervisedSplit(train, labelled, unlabelled="weak")
    with pytest.raises(IndexError):
        SemiSupervisedSplit(train, [25])


def test_build_semi_dataset_from_a_config(root):
    cfg = validate({"dataset": {"name": "shapes", "root": str(root), "generate": TINY_DATA, "crop_size": 24,
                                "labelled_ratio": 0.2, "oversample_rate": 3},
                    "model": {"name": "slrnet_semi_wo_cls"}})
    ds = build_semi_dataset(cfg["dataset"], cfg["model"]["name"], seed=5)
    assert ds.unlabelled_mode == "hidden" and len(ds.labelled_indices) == 4 and len(ds) == 20 + 4 * 2
    assert ds.labelled_indices == select_labelled(ds.dataset, labelled_ratio=0.2, seed=5)
    assert ds[0]["image"].shape == (3, 24, 24) and ds.num_classes == 7
    assert build_semi_dataset(cfg["dataset"], "slrnet_semi", seed=5).unlabelled_mode == "image_labels"
    with pytest.raises(ValueError, match="not a semi-supervised model"):
        build_semi_dataset(cfg["dataset"], "slrnet", seed=5)
