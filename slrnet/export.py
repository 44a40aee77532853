"""Pseudo-label export for two-stage training (METHOD.md sections 5-6, "pseudo labels -> DeepLabV3+").

The single-stage network labels its own training set; a fully supervised segmenter is then trained
on those labels. Inference uses the ground-truth *image* labels to pick the classes
(``use_cls_label=True``): legitimate here, because the training set's image labels are the weak
supervision itself. The output is a VOC-layout root any segmentation codebase can read::

    <out_root>/SegmentationClassAug/<name>.png          palette PNGs (the CRF output with apply_crf)
    <out_root>/ImageSets/Segmentation/train_aug.txt     bare names, one per line
    <out_root>/ImageSets/Segmentation/train_aug_pairs.txt   "/JPEGImages/<name>.jpg /SegmentationClassAug/<name>.png"
    <out_root>/JPEGImages -> <data root>/JPEGImages     a symlink (link_images=True)
    <out_root>/classes.txt                              copied when the source root has one
    <out_root>/export_summary.json                      settings, counts, pseudo-label quality vs. masks

    >>> from slrnet.export import export_pseudo_labels
    >>> from slrnet.infer import TestConfig
    >>> test = TestConfig.from_config(cfg, use_cls_label=True, apply_crf=True)
    >>> info = export_pseudo_labels(model, train_set, "outputs/pseudo_voc", test)
    >>> info["quality"]["miou"]        # pseudo labels vs. the training masks, where the set has them

Command line: ``python -m slrnet export --config C --checkpoint P --output DIR [--apply_crf 1]``. ``--output`` lies
apart from the data root it reads and ``--mask_dir`` / ``--list_name`` are names under it (``slrnet.paths``); the
folder belongs to one job (``slrnet.output_folder``: a lock while it writes, ``job.json`` recording the checkpoint
and settings, another job's labels refused unless ``--overwrite``); names that would collide are refused first.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from slrnet.infer import Predictor, TestConfig, check_before_writing, split_description
from slrnet.models.loading import load_trained_model
from slrnet.paths import relative_name


def _relative_image_path(dataset, index: int, name: str) -> str:
    """The image's path under the dataset root, for the two-column list ('/JPEGImages/x.jpg' default)."""
    root, paths = getattr(dataset, "root", None), getattr(dataset, "image_paths", None)
    if root is not None and paths is not None:
        try:
            return "/" + Path(paths[index]).relative_to(root).as_posix()
        except ValueError:  # an image outside the root: keep the VOC convention
            pass
    return f"/JPEGImages/{name}.jpg"


def export_pseudo_labels(model, dataset, out_root, test: TestConfig | None = None, *, allow_label_leak: bool = False,
                         mask_dir: str = "SegmentationClassAug", list_name: str = "train_aug.txt",
                         link_images: bool = True, num_workers: int | None = None, device="auto",
                         amp: bool = True, max_images: int | None = None, job: dict | None = None,
                         raw_mask_dir: str | None = None) -> dict:
    """Label every image of ``dataset`` with ``test`` (default: the ground-truth image labels pick the classes,
    ``TestConfig(use_cls_label=True)``; with ``apply_crf`` the CRF output is written) and write a VOC-layout root
    at ``out_root``; returns a summary (with ``job``, what made the labels: ``slrnet.output_folder.describe_job``).
    ``mask_dir`` and ``list_name`` are names under ``out_root``, which lies apart from the dataset's root.
    With ``apply_crf``, ``raw_mask_dir`` (a name under ``out_root``) also receives the labels before the CRF, from
    the same predictions, and the summary's ``quality_before_crf`` scores them."""
    from slrnet.data.files import save_palette_png
    from slrnet.metrics import ConfusionMatrix, default_class_names
    from slrnet.utils import atomic_write_bytes, write_json

    test = test if test is not None else TestConfig(use_cls_label=True)
    mask_dir, list_name = check_export_names(mask_dir, list_name)
    if raw_mask_dir is not None:
        raw_mask_dir = relative_name(raw_mask_dir, "raw_mask_dir")
        if not test.apply_crf or raw_mask_dir == mask_dir:
            raise ValueError(f"raw_mask_dir: the labels before the CRF need apply_crf and a folder other than "
                             f"mask_dir ({mask_dir!r}), got {raw_mask_dir!r}")
    check_before_writing(model, dataset, out_root, test.use_cls_label, allow_label_leak, max_images)
    out_root = Path(out_root)
    src_root = getattr(dataset, "root", None)
    labels_dir = out_root / mask_dir
    cm = cm_raw = None
    names, pairs = [], []
    records = Predictor(model, test, device=device, amp=amp).iter_dataset(dataset, max_images=max_images,
                                                                          num_workers=num_workers)
    for index, rec in enumerate(records):
        label = rec["pred_crf"] if test.apply_crf else rec["pred"]               # (H, W) uint8
        save_palette_png(label, labels_dir / f"{rec['name']}.png")
        if raw_mask_dir is not None:
            save_palette_png(rec["pred"], out_root / raw_mask_dir / f"{rec['name']}.png")
        names.append(rec["name"])
        pairs.append(f"{_relative_image_path(dataset, index, rec['name'])} /{mask_dir}/{rec['name']}.png")
        if rec["mask"] is not None:  # how good are the pseudo labels where pixel labels exist?
            num_classes = getattr(dataset, "num_classes", None) or rec["num_classes"]
            cm = cm or ConfusionMatrix(num_classes)
            cm.update(label, rec["mask"])
            if raw_mask_dir is not None:
                cm_raw = cm_raw or ConfusionMatrix(num_classes)
                cm_raw.update(rec["pred"], rec["mask"])

    lists = out_root / "ImageSets" / "Segmentation"
    pairs_name = pairs_list_name(list_name)
    atomic_write_bytes(lists / list_name, ("\n".join(names) + "\n").encode())
    atomic_write_bytes(lists / pairs_name, ("\n".join(pairs) + "\n").encode())
    if src_root is not None:
        src_root = Path(src_root)
        if (src_root / "classes.txt").is_file() and not (out_root / "classes.txt").exists():
            shutil.copyfile(src_root / "classes.txt", out_root / "classes.txt")
        images = out_root / "JPEGImages"
        if link_images and (src_root / "JPEGImages").is_dir() and not images.exists():
            os.symlink((src_root / "JPEGImages").resolve(), images, target_is_directory=True)

    class_names = getattr(dataset, "class_names", None)
    summary = {
        "out_root": str(out_root), "source_root": None if src_root is None else str(src_root),
        "split": split_description(dataset), "num_images": len(names), "mask_dir": mask_dir,
        "list_file": str(lists / list_name), "pairs_list_file": str(lists / pairs_name),
        "uses_gt_labels": test.use_cls_label, "settings": test.as_dict(),
        "quality": None if cm is None else cm.summary(class_names or default_class_names(cm.num_classes)),
        "raw_mask_dir": raw_mask_dir,
        "quality_before_crf": None if cm_raw is None else cm_raw.summary(class_names
                                                                         or default_class_names(cm_raw.num_classes)),
        "job": job,
    }
    write_json(out_root / "export_summary.json", summary)
    return summary


def check_export_names(mask_dir: str, list_name: str) -> tuple[str, str]:
    """``mask_dir`` and ``list_name`` as names under the output root (no ``..``, no absolute path): protects the
    dataset's masks and lists, and everything outside ``--output``, from the export."""
    return relative_name(mask_dir, "--mask_dir"), relative_name(list_name, "--list_name")


def pairs_list_name(list_name: str) -> str:
    """The two-column list beside ``list_name``: ``train_aug.txt`` -> ``train_aug_pairs.txt``."""
    path = Path(list_name)
    return path.with_name(f"{path.stem}_pairs{path.suffix or '.txt'}").as_posix()


def export_results(mask_dir: str, list_name: str) -> tuple[list[str], list[str]]:
    """(results, companions) of an export under its root, as ``slrnet.output_folder.OutputFolder`` records them."""
    lists = "ImageSets/Segmentation"
    return ([mask_dir, f"{lists}/{list_name}", f"{lists}/{pairs_list_name(list_name)}", "export_summary.json"],
            ["JPEGImages", "classes.txt"])


# ----------------------------------------------------------------------------- command line

def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from slrnet.infer import add_model_data_arguments, add_runtime_arguments, parse_scales

    add_model_data_arguments(parser, output_help="output VOC-layout root for the pseudo labels",
                             data_list_help="training list (default: train_aug.txt or train.txt)")
    parser.add_argument("--apply_crf", type=int, default=1, choices=(0, 1), help="refine labels with the dense CRF")
    parser.add_argument("--use_cls_label", type=int, default=1, choices=(0, 1),
                        help="keep the ground-truth image classes (the weak labels of the training set)")
    parser.add_argument("--allow_label_leak", type=int, default=0, choices=(0, 1),
                        help="permit --use_cls_label 1 on a list that is not a training list")
    parser.add_argument("--bg_pow", type=float, default=None, help="background power (config: test.bg_pow)")
    parser.add_argument("--fp_cut", type=float, default=None, help="score threshold without --use_cls_label")
    parser.add_argument("--scales", type=parse_scales, default=None,
                        help="comma-separated scales (config: test.scales)")
    parser.add_argument("--mask_dir", default="SegmentationClassAug", help="label folder name under --output")
    parser.add_argument("--list_name", default="train_aug.txt", help="list file name under ImageSets/Segmentation")
    parser.add_argument("--link_images", type=int, default=1, choices=(0, 1), help="symlink JPEGImages/")
    add_runtime_arguments(parser)


def cli_run(args: argparse.Namespace) -> int:
    from slrnet.infer import build_split
    from slrnet.output_folder import OutputFolder, describe_job
    from slrnet.utils import resolve_device

    check_export_names(args.mask_dir, args.list_name)
    device = resolve_device(args.device)
    model, cfg = load_trained_model(args.checkpoint, args.config, device, prepare=True)
    test = TestConfig.from_config(cfg, scales=args.scales, fp_cut=args.fp_cut, bg_pow=args.bg_pow,
                                  apply_crf=bool(args.apply_crf), use_cls_label=bool(args.use_cls_label))
    dataset = build_split(cfg["dataset"], args.data_root, args.data_list, default_split="train")
    max_images = args.max_images or None
    check_before_writing(model, dataset, args.output, test.use_cls_label, bool(args.allow_label_leak), max_images)
    results, companions = export_results(args.mask_dir, args.list_name)
    job = describe_job("export", args.checkpoint, cfg, dataset, test.as_dict(), results, companions,
                       mask_dir=args.mask_dir, list_name=args.list_name, link_images=bool(args.link_images))
    folder = OutputFolder(args.output, job).claim(overwrite=args.overwrite)
    try:
        info = export_pseudo_labels(
            model, dataset, args.output, test, allow_label_leak=bool(args.allow_label_leak), mask_dir=args.mask_dir,
            list_name=args.list_name, link_images=bool(args.link_images), num_workers=args.num_workers,
            device=device, max_images=max_images, job=job)
    finally:
        folder.release()
    quality = info["quality"]
    extra = ""
    if quality and quality["miou"] is not None:
        extra = f"; pseudo-label mIoU vs. masks {100 * quality['miou']:.2f}"
    print(f"wrote {info['num_images']} pseudo labels to {args.output}/{args.mask_dir}{extra}")
    return 0
