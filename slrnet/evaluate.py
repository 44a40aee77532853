"""Evaluate a folder of predicted masks against a VOC-layout ground truth (mIoU and friends).

Predictions are ``<pred_dir>/<name>.png`` label maps: palette PNGs (as ``slrnet infer`` writes), grey
index PNGs, or RGB PNGs in VOC colours. Ground truth is looked up per image in
``<data_root>/SegmentationClass/`` and then ``SegmentationClassAug/`` (or ``mask_dir`` when given), so
a val list and an SBD-augmented training list both work. Void (255) is ignored; see
``slrnet.metrics`` for the treatment of absent classes.

    >>> from slrnet.evaluate import evaluate_folder
    >>> cm, info = evaluate_folder("outputs/infer/crf", "data/VOC2012", "ImageSets/Segmentation/val.txt")
    >>> cm.miou()

Command line::

    python -m slrnet eval --pred_dir outputs/infer/crf --data_root data/VOC2012 \\
        [--data_list val.txt] [--num_classes 21] [--output_json metrics.json]

A missing prediction is an error (skipping it would inflate the score), as is a size mismatch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

GT_DIRS = ("SegmentationClass", "SegmentationClassAug")


def read_names(list_file) -> list[str]:
    """Image names of a list file: bare names, or two columns ("/JPEGImages/x.jpg /Seg.../x.png")."""
    names = []
    for line in Path(list_file).read_text().splitlines():
        fields = line.split()
        if fields:
            names.append(Path(fields[0]).stem)
    if not names:
        raise ValueError(f"{list_file}: the list file is empty; expected one image name per line")
    return names


def _resolve_list(data_root: Path, data_list) -> Path | None:
    if data_list is None:
        default = data_root / "ImageSets" / "Segmentation" / "val.txt"
        return default if default.is_file() else None
    for candidate in (Path(data_list), data_root / data_list, data_root / "ImageSets" / "Segmentation" / data_list):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"--data_list {data_list} not found (also looked under {data_root} and "
                            f"{data_root / 'ImageSets' / 'Segmentation'})")


def _class_names(data_root: Path, num_classes: int | None) -> list[str]:
    from slrnet.metrics import default_class_names

    classes_file = data_root / "classes.txt"
    if classes_file.is_file():
        from slrnet.data.voc import read_classes_file

        names = list(read_classes_file(classes_file))
        if num_classes is None or num_classes == len(names):
            return names
    return default_class_names(num_classes or 21)


def evaluate_folder(pred_dir, data_root, data_list=None, num_classes: int | None = None, mask_dir: str | None = None,
                    ignore_index: int = 255):
    """(ConfusionMatrix, info) over the list's images (default ``val.txt``, else every PNG in pred_dir)."""
    from slrnet.data.files import load_mask
    from slrnet.metrics import ConfusionMatrix
    from slrnet.utils import progress

    pred_dir, data_root = Path(pred_dir), Path(data_root)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"--pred_dir {pred_dir} is not a folder of <name>.png predictions")
    if not data_root.is_dir():
        raise FileNotFoundError(f"--data_root {data_root} is not a VOC-layout folder")
    list_file = _resolve_list(data_root, data_list)
    names = read_names(list_file) if list_file is not None else sorted(p.stem for p in pred_dir.glob("*.png"))
    if not names:
        hint = " (it has raw/ and crf/ subfolders: point --pred_dir at one)" if (pred_dir / "raw").is_dir() else ""
        raise FileNotFoundError(f"{pred_dir} holds no .png predictions{hint}")
    missing = [n for n in names if not (pred_dir / f"{n}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(names)} predictions are missing from {pred_dir}, "
                                f"e.g. {missing[0]}.png")
    class_names = _class_names(data_root, num_classes)
    cm = ConfusionMatrix(len(class_names), ignore_index=ignore_index)
    gt_dirs = (mask_dir,) if mask_dir else GT_DIRS
    for name in progress(names, desc="eval"):
        gt_path = next((data_root / d / f"{name}.png" for d in gt_dirs if (data_root / d / f"{name}.png").is_file()),
                       None)
        if gt_path is None:
            raise FileNotFoundError(f"no ground truth for {name}: looked for {name}.png in "
                                    f"{', '.join(str(data_root / d) for d in gt_dirs)}")
        pred, gt = load_mask(pred_dir / f"{name}.png"), load_mask(gt_path)
        if pred.shape != gt.shape:
            raise ValueError(f"{pred_dir / (name + '.png')} is {pred.shape[1]}x{pred.shape[0]} (WxH) but the ground "
                             f"truth {gt_path} is {gt.shape[1]}x{gt.shape[0]}; expected equal sizes")
        try:
            cm.update(pred, gt)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    info = {"pred_dir": str(pred_dir), "data_root": str(data_root),
            "data_list": None if list_file is None else str(list_file), "num_images": len(names),
            "class_names": class_names}
    return cm, info


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred_dir", required=True, help="folder of <name>.png predicted label maps")
    parser.add_argument("--data_root", required=True, help="VOC-layout root with SegmentationClass[Aug]/")
    parser.add_argument("--data_list", default=None,
                        help="list of names (default: ImageSets/Segmentation/val.txt, else every PNG in pred_dir)")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="number of classes incl. background (default: classes.txt of the root, else 21)")
    parser.add_argument("--mask_dir", default=None,
                        help="ground-truth folder (default: SegmentationClass/, then SegmentationClassAug/)")
    parser.add_argument("--output_json", "--json", default=None, help="also write the summary as JSON here")


def cli_run(args: argparse.Namespace) -> int:
    from slrnet.utils import write_json

    cm, info = evaluate_folder(args.pred_dir, args.data_root, args.data_list, args.num_classes, args.mask_dir)
    print(cm.format_table(info["class_names"], title=f"{info['pred_dir']}: {info['num_images']} images"))
    if args.output_json:
        write_json(args.output_json, {**info, **cm.summary(info["class_names"])})
        print(f"wrote {args.output_json}")
    return 0
