"""Datasets from a config's ``dataset`` section: the one place that turns config keys into a dataset.

    >>> from slrnet.data.build import build_dataset
    >>> train = build_dataset({"name": "shapes", "root": None, "crop_size": 96, "scale": [0.9, 1.0]}, "train", train=True)
"""
from __future__ import annotations

from pathlib import Path

from slrnet.data.files import DatasetError
from slrnet.data.photos import PHOTOS, ensure_photos_dataset
from slrnet.data.synthetic import SHAPES, ensure_default_dataset
from slrnet.data.transforms import TrainTransform, ValTransform
from slrnet.data.voc import VOCSegmentation


# the embedded datasets: name -> their generator (slrnet.data.generated), and -> ensure(root, **options), which
# generates one on first use from dataset.generate options (root None: data/<name>)
GENERATORS = {"shapes": SHAPES, "photos": PHOTOS}
EMBEDDED = {"shapes": ensure_default_dataset, "photos": ensure_photos_dataset}


def resolve_data_root(root) -> Path:
    """A config root: absolute as is; relative, the CWD if it exists there, else ``data/...`` under
    ``slrnet.utils.default_data_root()`` ($SLRNET_DATA) and anything else under the checkout."""
    from slrnet.utils import default_data_root, repo_root

    path = Path(root).expanduser()
    if path.is_absolute() or path.exists():
        return path
    if path.parts and path.parts[0] == "data":
        return default_data_root().joinpath(*path.parts[1:])
    return repo_root() / path


def build_dataset(cfg_dataset: dict, split: str, train: bool) -> VOCSegmentation:
    """Dataset from a config's ``dataset`` section (keys as in the original YAML configs).

    Keys: ``name`` ("shapes" and "photos" generate an embedded dataset on first use, with ``generate`` options;
    any other name is a VOC-layout root), ``root``, ``crop_size``, ``scale`` [lo, hi]; optional
    ``list`` (or ``<split>_list``), ``mask_dir`` (None = auto), ``classes``, ``cache`` (keep decoded samples in
    memory, ``VOCSegmentation``'s ``cache``); ``val_root``: another VOC-layout
    root for every split but train (the second stage trains on exported pseudo labels and validates on the
    original masks there, mask folder found automatically). ``train=True`` gives the training transform, else
    full images.
    """
    cfg = dict(cfg_dataset)
    name = str(cfg.get("name", "voc")).lower()
    mask_dir = cfg.get("mask_dir")
    if split != "train" and cfg.get("val_root"):
        root, mask_dir = resolve_data_root(cfg["val_root"]), None
    elif name in EMBEDDED:
        root = EMBEDDED[name](resolve_data_root(cfg["root"]) if cfg.get("root") else None,
                              **(cfg.get("generate") or {}))
    else:
        if not cfg.get("root"):
            raise DatasetError(f"dataset.root: expected the folder of the '{name}' dataset, got {cfg.get('root')!r}")
        root = resolve_data_root(cfg["root"])
    list_file = cfg.get("list") or cfg.get(f"{split}_list")
    if list_file is None and split == "train" and (root / "ImageSets/Segmentation/train_aug.txt").is_file():
        list_file = root / "ImageSets/Segmentation/train_aug.txt"      # the SBD-augmented training list
    if train:
        transform = TrainTransform(crop_size=int(cfg.get("crop_size", 321)), scale=tuple(cfg.get("scale", (0.9, 1.0))))
    else:
        transform = ValTransform()
    return VOCSegmentation(root, split=split, list_file=list_file, mask_dir=mask_dir,
                           transform=transform, classes=cfg.get("classes"), cache=bool(cfg.get("cache", False)))


def check_class_counts(cfg: dict, train_set, val_set) -> None:
    """``model.num_classes`` must equal each dataset's class count (background included) where it has one."""
    for name, data in (("training", train_set), ("validation", val_set)):
        n = getattr(data, "num_classes", None)
        if n is not None and int(n) != cfg["model"]["num_classes"]:
            where = getattr(data, "classes_source", None) or getattr(data, "root", "the dataset")
            raise ValueError(f"model.num_classes = {cfg['model']['num_classes']}, but the {name} data has {n} "
                             f"classes (background included; from {where}); set model.num_classes={n}")


def check_val_split(val_set, max_images: int | None = None) -> None:
    """Read every val image and mask that validation will read (the first ``max_images``; None = all) and raise one
    ``DatasetError`` listing the unreadable ones. Run before the first epoch, so a corrupt val image stops the start,
    not a whole epoch later with no checkpoint written."""
    count = len(val_set) if not max_images else min(len(val_set), int(max_images))
    read = getattr(val_set, "load_raw", None) or val_set.__getitem__
    problems = []
    for i in range(count):
        try:
            read(i)
        except DatasetError as e:
            problems.append(str(e))
    if problems:
        where = getattr(val_set, "list_file", None) or "the val split"
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DatasetError(f"{where}: {len(problems)} of {count} val items are unreadable, found before training: "
                           f"{'; '.join(problems[:3])}{more}")


def check_training_data(cfg: dict, train_set, val_set) -> None:
    """What ``Trainer.build`` checks before any work: the class counts (:func:`check_class_counts`) and the val
    split (:func:`check_val_split`, as many images as ``train.val_max_images`` lets validation read)."""
    check_class_counts(cfg, train_set, val_set)
    if val_set is not None:
        check_val_split(val_set, cfg["train"]["val_max_images"] or None)
