"""``python -m slrnet convert sbd | coco | lid``: the downloads turned into the VOC layout the configs read.

    python -m slrnet convert sbd  --sbd-root data/benchmark_RELEASE --voc-root data/VOCdevkit/VOC2012
    python -m slrnet convert coco --coco-root data/coco --split train2014 --out data/COCO
    python -m slrnet convert coco --coco-root data/coco --split val2014   --out data/COCO
    python -m slrnet convert lid  --lid-root data/L2ID --out data/LID

``sbd`` (``slrnet.data.convert_sbd``): SBD's ``dataset/cls/*.mat`` -> ``SegmentationClassAug/*.png`` and
``ImageSets/Segmentation/train_aug.txt`` inside the VOC root. ``coco`` (``slrnet.data.convert_coco``, needs
``pip install slrnet[coco]`` for pycocotools): the instance JSON -> class-index PNGs, ``JPEGImages`` links, the
split's list and ``classes.txt``. ``lid`` (``slrnet.data.convert_lid``): the L2ID layout -> links, VOC XML image
labels, val mask links, lists and ``classes.txt``. Each skips what an earlier run finished, so an interrupted run
is run again.
"""
from __future__ import annotations

import argparse


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    sbd = sub.add_parser("sbd", help="SBD .mat masks + VOC 2012 -> SegmentationClassAug/ and train_aug.txt",
                         description="Convert SBD (benchmark.tgz) into VOC 2012's folder: SegmentationClassAug/ "
                                     "palette PNGs and ImageSets/Segmentation/train_aug.txt = (SBD train + val + "
                                     "VOC train) - VOC val (10,582 images on the real data).")
    sbd.add_argument("--sbd-root", "--sbd_root", dest="sbd_root", required=True,
                     help="benchmark_RELEASE (holds dataset/cls/*.mat, dataset/train.txt, dataset/val.txt)")
    sbd.add_argument("--voc-root", "--voc_root", dest="voc_root", required=True,
                     help="VOCdevkit/VOC2012 (holds JPEGImages/, SegmentationClass/, ImageSets/Segmentation/)")
    sbd.add_argument("--mask-dir", dest="mask_dir", default="SegmentationClassAug", help="output mask folder name")
    coco = sub.add_parser("coco", help="COCO 2014 instances -> VOC layout (81 classes)",
                          description="Convert a COCO 2014 split (instances JSON + images) into VOC layout: "
                                      "SegmentationClass/ class-index PNGs (255 where classes overlap), "
                                      "JPEGImages/ links, ImageSets/Segmentation/{train,val}.txt, classes.txt.")
    coco.add_argument("--coco-root", "--coco_root", dest="coco_root", required=True,
                      help="folder with annotations/instances_<split>.json and <split>/*.jpg")
    coco.add_argument("--split", required=True, choices=("train2014", "val2014"), help="which split to convert")
    coco.add_argument("--out", default="data/COCO", help="VOC-layout output root (default: data/COCO)")
    coco.add_argument("--overlap", choices=("void", "first"), default="void",
                      help="pixels of overlapping classes: void (255, default) or the first annotation's class "
                           "(the authors' rule)")
    coco.add_argument("--copy-images", dest="copy_images", action="store_true",
                      help="copy images into JPEGImages/ instead of linking them")
    coco.add_argument("--num_workers", "--num-workers", dest="num_workers", type=int, default=0,
                      help="processes (0 = all CPU cores)")
    lid = sub.add_parser("lid", help="L2ID (LID challenge, WSSS track: ILSVRC-DET, 200 classes) -> VOC layout",
                         description="Convert the L2ID layout (Annotations/cls_labels.npy, Data/, val.txt, test.txt, "
                                     "LID_track1/, track1_val_annotations_raw/) into VOC layout: JPEGImages/ links, "
                                     "Annotations/*.xml image labels for training images, SegmentationClass/ links "
                                     "to the val masks, ImageSets/Segmentation/{train,val,test}.txt, classes.txt.")
    lid.add_argument("--lid-root", "--lid_root", dest="lid_root", required=True,
                     help="the L2ID root (holds Annotations/cls_labels.npy and Data/)")
    lid.add_argument("--out", default="data/LID", help="VOC-layout output root (default: data/LID)")


def cli_run(args: argparse.Namespace) -> int:
    if args.dataset == "sbd":
        from slrnet.data.convert_sbd import convert_sbd

        s = convert_sbd(args.sbd_root, args.voc_root, mask_dir=args.mask_dir)
        print(f"{s['mask_dir']}: {s['written_from_sbd']} masks from SBD, {s['copied_from_voc']} copied from VOC, "
              f"{s['skipped']} already there\n{s['list']}: {s['train_aug']} training images")
        return 0
    if args.dataset == "lid":
        from slrnet.data.convert_lid import convert_lid

        s = convert_lid(args.lid_root, args.out)
        print(f"{s['out_root']}: {s['train']} training images (image labels), {s.get('val', 0)} val (masks), "
              f"{s.get('test', 0)} test, {s['classes']} classes")
        return 0
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        raise ValueError("convert coco needs pycocotools: pip install 'slrnet[coco]' (or pip install pycocotools)")
    from slrnet.data.convert_coco import convert_coco

    s = convert_coco(args.coco_root, args.split, args.out, overlap=args.overlap, copy_images=args.copy_images,
                     num_workers=args.num_workers or None)
    print(f"{s['out_root']}: {s['images']} images of {s['split']} ({s['annotated']} annotated), {s['written']} masks "
          f"written, {s['skipped']} already there, {s['classes']} classes")
    return 0
