"""``convert sbd`` and ``convert coco`` on miniatures in the real formats, written here.

SBD: ``.mat`` files made with ``scipy.io.savemat`` in SBD's structure (a struct ``GTcls`` with ``Segmentation``,
``Boundaries`` and ``CategoriesPresent``), its train/val lists, and a small VOC 2012 folder. COCO: an instances
JSON with category ids that have gaps, a polygon, an uncompressed and a compressed RLE, a crowd region, two classes
overlapping, and an image without annotations. Each output is checked pixel by pixel, loads through
``VOCSegmentation`` and trains one step; a second run writes nothing; an interrupted run finishes what is missing.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from slrnet.data import VOCSegmentation, load_mask
from slrnet.data.files import DatasetError, DatasetFileNotFoundError


def _image(path, h, w, seed):
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG")


def _train_one_step(root, tmp_path, num_classes, **dataset):
    from slrnet.config import validate
    from slrnet.train import Trainer

    cfg = validate({
        "misc": {"seed": 0, "verbose": 0, "device": "cpu", "num_snapshots": 0},
        "train": {"num_epochs": 1, "pretrain_epochs": 0, "batch_size": 2, "num_workers": 0,
                  "max_steps_per_epoch": 1, "val_max_images": 1},
        "dataset": {"name": "voc", "root": str(root), "crop_size": 32, **dataset},
        "model": {"backbone": "tiny", "num_classes": num_classes, "decoder_channels": 16,
                  "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}, "pamr_iter": 1,
                  "pamr_dilations": [1]},
        "test": {"scales": [1.0]},
    })
    history = Trainer.build(cfg, tmp_path / "run").fit()
    assert np.isfinite(history[0]["train_loss"])


# ----------------------------------------------------------------------------------------- SBD
@pytest.fixture
def sbd_and_voc(tmp_path):
    from scipy.io import savemat
    from scipy.sparse import csc_matrix

    voc, sbd = tmp_path / "VOCdevkit" / "VOC2012", tmp_path / "benchmark_RELEASE"
    names = ["2007_000001", "2007_000002", "2007_000003", "2007_000004", "2008_000005", "2008_000006"]
    v1, v2, v3, v4, s1, s2 = names
    for i, n in enumerate(names):
        _image(voc / "JPEGImages" / f"{n}.jpg", 40, 48, i)
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text(f"{v1}\n{v2}\n")
    (lists / "val.txt").write_text(f"{v3}\n{v4}\n")
    voc_masks = {}
    for i, n in enumerate([v1, v2, v3, v4]):                     # VOC masks: a class block and a void border
        m = np.zeros((40, 48), np.uint8)
        m[10:20, 10:30] = i + 1
        m[9, 9:31] = 255
        voc_masks[n] = m
        (voc / "SegmentationClass").mkdir(exist_ok=True)
        Image.fromarray(m, "L").save(voc / "SegmentationClass" / f"{n}.png")
    (sbd / "dataset" / "cls").mkdir(parents=True)
    (sbd / "dataset" / "train.txt").write_text(f"{s1}\n{v2}\n{v3}\n")   # v3 is VOC val: must not train
    (sbd / "dataset" / "val.txt").write_text(f"{s2}\n")
    sbd_masks = {}
    for i, n in enumerate([s1, v2, v3, s2]):
        m = np.zeros((40, 48), np.uint8)
        m[:, : 8 + 4 * i] = 15                                  # person, a different width per file
        m[30:, 40:] = 7
        sbd_masks[n] = m
        boundaries = np.empty((20, 1), dtype=object)          # SBD: one sparse boundary map per class
        for c in range(20):
            boundaries[c, 0] = csc_matrix((40, 48), dtype=np.uint8)
        gt = {"Segmentation": m, "Boundaries": boundaries, "CategoriesPresent": np.array([[7], [15]], np.uint8)}
        savemat(sbd / "dataset" / "cls" / f"{n}.mat", {"GTcls": gt})
    return sbd, voc, voc_masks, sbd_masks, names


def test_sbd_conversion_masks_list_and_idempotence(sbd_and_voc, tmp_path):
    from slrnet.data.convert_sbd import convert_sbd

    sbd, voc, voc_masks, sbd_masks, (v1, v2, v3, v4, s1, s2) = sbd_and_voc
    summary = convert_sbd(sbd, voc, progress=False)
    assert (summary["train_aug"], summary["written_from_sbd"], summary["copied_from_voc"]) == (4, 3, 3)
    lines = (voc / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().splitlines()
    assert lines == sorted([v1, v2, s1, s2])                    # (SBD train | SBD val | VOC train) - VOC val
    out = voc / "SegmentationClassAug"
    for n in (s1, s2, v2):                                      # SBD's mask where SBD has one
        assert np.array_equal(load_mask(out / f"{n}.png"), sbd_masks[n]), n
    for n in (v1, v3, v4):                                      # VOC's own (val always), 255 border kept
        assert np.array_equal(load_mask(out / f"{n}.png"), voc_masks[n]), n
    assert load_mask(out / f"{v3}.png")[9, 20] == 255
    assert Image.open(out / f"{s1}.png").mode == "P"           # VOC palette PNG

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = convert_sbd(sbd, voc, progress=False)               # a second run writes nothing new
    assert (again["written_from_sbd"], again["copied_from_voc"], again["skipped"]) == (0, 0, 6)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    (out / f"{s1}.png").unlink()                                # interrupted: one missing, one cut short
    data = (out / f"{v1}.png").read_bytes()
    (out / f"{v1}.png").write_bytes(data[: len(data) // 2])
    resumed = convert_sbd(sbd, voc, progress=False)
    assert (resumed["written_from_sbd"], resumed["copied_from_voc"], resumed["skipped"]) == (1, 1, 4)
    assert np.array_equal(load_mask(out / f"{v1}.png"), voc_masks[v1])
    assert not list(out.glob(".*tmp"))

    ds = VOCSegmentation(voc, "train", list_file=voc / "ImageSets/Segmentation/train_aug.txt",
                         mask_dir="SegmentationClassAug")
    assert len(ds) == 4 and ds.image_labels()[ds.names.index(s1)].nonzero()[0].tolist() == [6, 14]
    _train_one_step(voc, tmp_path, 21, train_list="ImageSets/Segmentation/train_aug.txt",
                    val_list="ImageSets/Segmentation/val.txt", mask_dir="SegmentationClassAug")


def test_sbd_bad_input_is_named(sbd_and_voc, tmp_path):
    from slrnet.data.convert_sbd import convert_sbd

    sbd, voc, _, _, names = sbd_and_voc
    with pytest.raises(DatasetFileNotFoundError, match="SBD folder not found: .*nowhere"):
        convert_sbd(tmp_path / "nowhere", voc, progress=False)
    (sbd / "dataset" / "cls" / f"{names[4]}.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(100))
    with pytest.raises(DatasetError, match=f"{names[4]}.mat: not an SBD class mask"):
        convert_sbd(sbd, voc, progress=False)


def test_convert_cli_documents_both_and_reports_one_line(sbd_and_voc, capsys):
    from slrnet.cli import main

    sbd, voc, *_ = sbd_and_voc
    assert main(["convert", "sbd", "--sbd-root", str(sbd), "--voc-root", str(voc)]) == 0
    assert "4 training images" in capsys.readouterr().out
    assert main(["convert", "sbd", "--sbd-root", str(sbd / "x"), "--voc-root", str(voc)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: SBD folder not found") and "\n" not in err
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = capsys.readouterr().out
    assert "sbd" in text and "coco" in text


# ----------------------------------------------------------------------------------------- COCO
H, W = 20, 24


def _rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE of a bool mask (column-major runs, starting with zeros)."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return counts


@pytest.fixture
def coco_root(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    root = tmp_path / "coco"
    for i, name in enumerate(["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg",
                              "COCO_val2014_000000000003.jpg"]):
        _image(root / "val2014" / name, H, W, 10 + i)
    square = np.zeros((H, W), bool)
    square[4:10, 12:20] = True                                  # overlaps the polygon at rows 4..9, cols 12..15
    crowd = np.zeros((H, W), bool)
    crowd[15:19, 2:6] = True
    dog = np.zeros((H, W), bool)
    dog[2:8, 3:9] = True
    dog_rle = mask_utils.encode(np.asfortranarray(dog.astype(np.uint8)))
    dog_rle["counts"] = dog_rle["counts"].decode()              # compressed RLE, as JSON stores it
    data = {
        "images": [{"id": 1, "file_name": "COCO_val2014_000000000001.jpg", "height": H, "width": W},
                   {"id": 2, "file_name": "COCO_val2014_000000000002.jpg", "height": H, "width": W},
                   {"id": 3, "file_name": "COCO_val2014_000000000003.jpg", "height": H, "width": W}],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,              # person: a polygon
             "segmentation": [[2.0, 2.0, 16.0, 2.0, 16.0, 12.0, 2.0, 12.0]]},
            {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 0,              # car: uncompressed RLE
             "segmentation": {"size": [H, W], "counts": _rle_counts(square)}},
            {"id": 3, "image_id": 1, "category_id": 90, "iscrowd": 1,             # toothbrush: a crowd RLE
             "segmentation": {"size": [H, W], "counts": _rle_counts(crowd)}},
            {"id": 4, "image_id": 2, "category_id": 3, "iscrowd": 0, "segmentation": dog_rle},
        ],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(data))
    return root, square, crowd, dog


def test_coco_conversion_masks_overlaps_lists_and_idempotence(coco_root, tmp_path):
    from slrnet.data.convert_coco import convert_coco

    root, square, crowd, dog = coco_root
    out = tmp_path / "COCO"
    s = convert_coco(root, "val2014", out, num_workers=1, progress=False)
    assert (s["images"], s["annotated"], s["written"], s["classes"]) == (3, 2, 3, 4)
    assert (out / "classes.txt").read_text().splitlines() == ["background", "person", "car", "toothbrush"]
    names = (out / "ImageSets" / "Segmentation" / "val.txt").read_text().splitlines()
    assert names == ["COCO_val2014_000000000001", "COCO_val2014_000000000002", "COCO_val2014_000000000003"]
    m = load_mask(out / "SegmentationClass" / f"{names[0]}.png")
    assert m[5, 5] == 1 and m[11, 3] == 1                       # person inside the polygon
    assert m[6, 18] == 2 and m[9, 19] == 2                      # car where only the car is
    assert (m[4:10, 12:16] == 255).all()                        # person and car overlap: void
    assert (m[crowd] == 3).all()                                # crowd region painted in its class (id 90 -> 3)
    assert m[0, 0] == 0 and m[19, 23] == 0 and m[13, 10] == 0  # background
    m2 = load_mask(out / "SegmentationClass" / f"{names[1]}.png")
    assert np.array_equal(m2, np.where(dog, 2, 0))              # compressed RLE decoded exactly
    assert not load_mask(out / "SegmentationClass" / f"{names[2]}.png").any()   # no annotations: background
    assert (out / "JPEGImages" / f"{names[0]}.jpg").is_symlink()
    first = convert_coco(root, "val2014", tmp_path / "first", overlap="first", num_workers=1, progress=False)
    assert first["written"] == 3
    assert (load_mask(tmp_path / "first" / "SegmentationClass" / f"{names[0]}.png")[4:10, 12:16] == 1).all()

    again = convert_coco(root, "val2014", out, num_workers=1, progress=False)
    assert (again["written"], again["skipped"]) == (0, 3)
    (out / "SegmentationClass" / f"{names[1]}.png").unlink()    # interrupted
    assert convert_coco(root, "val2014", out, num_workers=1, progress=False)["written"] == 1

    ds = VOCSegmentation(out, "val")
    assert ds.num_classes == 4
    assert ds.image_labels().tolist() == [[1, 1, 1], [0, 1, 0], [0, 0, 0]]
    _train_one_step(out, tmp_path, 4, train_list="ImageSets/Segmentation/val.txt",
                    val_list="ImageSets/Segmentation/val.txt", mask_dir="SegmentationClass")


def test_coco_bad_input_is_named(coco_root, tmp_path):
    from slrnet.data.convert_coco import convert_coco

    root, *_ = coco_root
    path = root / "annotations" / "instances_val2014.json"
    data = json.loads(path.read_text())
    (root / "val2014" / data["images"][2]["file_name"]).unlink()
    with pytest.raises(DatasetFileNotFoundError, match="000000000003.jpg is listed in instances_val2014.json"):
        convert_coco(root, "val2014", tmp_path / "o", num_workers=1, progress=False)
    del data["annotations"]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="instances_val2014.json has no 'annotations' list"):
        convert_coco(root, "val2014", tmp_path / "o", num_workers=1, progress=False)
    with pytest.raises(DatasetFileNotFoundError, match="instances_train2014.json"):
        convert_coco(root, "train2014", tmp_path / "o", num_workers=1, progress=False)


# ----------------------------------------------------------------------------------------- L2ID
@pytest.fixture
def lid_root(tmp_path):
    root = tmp_path / "L2ID"
    files = ["train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001", "train/ILSVRC2013_train/n01443537/n01443537_2"]
    labels = np.zeros((2, 200), np.float32)
    labels[0, [0, 57]] = 1                                     # accordion, dog
    labels[1, 124] = 1                                         # person
    (root / "Annotations").mkdir(parents=True)
    np.save(root / "Annotations" / "cls_labels.npy", {"files": files, "labels": labels}, allow_pickle=True)
    for i, f in enumerate(files):
        _image(root / "Data" / f"{f}.JPEG", 40, 44, 20 + i)
    (root / "val.txt").write_text("ILSVRC2012_val_00000001\n")
    (root / "test.txt").write_text("ILSVRC2012_test_00000001\n")
    _image(root / "LID_track1" / "val" / "ILSVRC2012_val_00000001.JPEG", 40, 44, 30)
    _image(root / "LID_track1" / "test" / "ILSVRC2012_test_00000001.JPEG", 40, 44, 31)
    mask = np.zeros((40, 44), np.uint8)
    mask[5:25, 5:25] = 59                                      # domestic_cat
    mask[25, 5:25] = 255                                       # ambiguous
    (root / "track1_val_annotations_raw").mkdir()
    Image.fromarray(mask, "L").save(root / "track1_val_annotations_raw" / "ILSVRC2012_val_00000001.png")
    return root, mask


def test_lid_conversion_labels_masks_lists(lid_root, tmp_path):
    from slrnet.data.convert_lid import L2ID_CLASSES, convert_lid

    root, mask = lid_root
    out = tmp_path / "LID"
    s = convert_lid(root, out, progress=False)
    assert (s["train"], s["val"], s["test"], s["classes"]) == (2, 1, 1, 201)
    assert L2ID_CLASSES[0] == "background" and L2ID_CLASSES[1] == "accordion" and L2ID_CLASSES[59] == "domestic_cat"
    train = VOCSegmentation(out, "train")
    assert train.names == ["ILSVRC2014_train_00000001", "n01443537_2"]
    labels = train.image_labels()
    assert labels[0].nonzero()[0].tolist() == [0, 57] and labels[1].nonzero()[0].tolist() == [124]
    val = VOCSegmentation(out, "val")
    sample = val[0]
    assert np.array_equal(sample["mask"].numpy(), mask) and sample["labels"].nonzero().flatten().tolist() == [58]
    assert (out / "ImageSets" / "Segmentation" / "test.txt").read_text() == "ILSVRC2012_test_00000001\n"
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "Annotations").iterdir()}
    convert_lid(root, out, progress=False)                      # a second run writes nothing new
    assert {p.name: p.stat().st_mtime_ns for p in (out / "Annotations").iterdir()} == stamps
    (out / "Annotations" / "n01443537_2.xml").unlink()          # interrupted: a label file and a link missing
    (out / "SegmentationClass" / "ILSVRC2012_val_00000001.png").unlink()
    convert_lid(root, out, progress=False)
    assert VOCSegmentation(out, "train").image_labels()[1].nonzero()[0].tolist() == [124]
    assert np.array_equal(VOCSegmentation(out, "val")[0]["mask"].numpy(), mask)
    _train_one_step(out, tmp_path, 201, train_list="ImageSets/Segmentation/train.txt",
                    val_list="ImageSets/Segmentation/val.txt", mask_dir="SegmentationClass")


def test_lid_bad_input_is_named(lid_root, tmp_path):
    import os
    from slrnet.data.convert_lid import convert_lid

    root, _ = lid_root
    (root / "LID_track1" / "val" / "ILSVRC2012_val_00000001.JPEG").unlink()
    with pytest.raises(DatasetFileNotFoundError, match="ILSVRC2012_val_00000001.JPEG is listed but does not exist"):
        convert_lid(root, tmp_path / "o", progress=False)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    np.save(root / "Annotations" / "cls_labels.npy", np.array({"files": Payload(), "labels": 0}, dtype=object),
            allow_pickle=True)
    with pytest.raises(DatasetError, match="cls_labels.npy: not an L2ID cls_labels.npy .*refusing to load"):
        convert_lid(root, tmp_path / "o", progress=False)
    assert not (tmp_path / "ran").exists()                      # nothing from the file ran
