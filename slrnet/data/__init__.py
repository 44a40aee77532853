"""Datasets in Pascal VOC layout, their transforms, and the two embedded datasets, "shapes" and "photos".

    >>> from slrnet.data import build_dataset, ensure_default_dataset, VOCSegmentation
    >>> root = ensure_default_dataset()                       # data/shapes, generated on first use
    >>> train = VOCSegmentation(root, "train")
    >>> ds = build_dataset({"name": "shapes", "root": None, "crop_size": 96, "scale": [0.9, 1.0]}, "train", train=True)

Modules: ``files`` (image and palette-PNG label files, the dataset errors), ``voc`` (the loader, label
derivation, validation), ``transforms`` (train / val transforms, the ImageNet mean and std), ``generated``
(writing a generated dataset once, atomically), ``synthetic`` (the shapes generator), ``photo_sources`` and
``photos`` (real photographs shipped in installed packages, composed into the photos dataset), ``build`` (a
dataset from a config's ``dataset`` section), ``splits`` (semi-supervised labelled / unlabelled splits),
``sampling`` (class-balanced epochs), ``convert_*`` (SBD, COCO, L2ID -> VOC layout).
"""
from slrnet.data.synthetic import SHAPES_CLASSES, ensure_default_dataset, generate_dataset
from slrnet.data.photos import PHOTOS_CLASSES, ensure_photos_dataset
from slrnet.data.transforms import MEAN, STD, TrainTransform, ValTransform, denormalize
from slrnet.data.files import (DatasetError, DatasetFileNotFoundError, load_image, load_mask, save_palette_png,
                               voc_colormap)
from slrnet.data.voc import VOC_CLASSES, VOCSegmentation
from slrnet.data.build import build_dataset
from slrnet.data.splits import SemiSupervisedSplit, build_semi_dataset, select_labelled

__all__ = [
    "MEAN", "STD", "PHOTOS_CLASSES", "SHAPES_CLASSES", "VOC_CLASSES", "DatasetError", "DatasetFileNotFoundError",
    "SemiSupervisedSplit", "TrainTransform", "ValTransform", "VOCSegmentation", "build_dataset", "build_semi_dataset",
    "denormalize", "ensure_default_dataset", "ensure_photos_dataset", "generate_dataset", "load_image", "load_mask",
    "save_palette_png",
    "select_labelled", "voc_colormap",
]
