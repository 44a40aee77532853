"""Semi-supervised splits: which training images keep their pixel labels (METHOD.md section 4).

SLRNet's semi-supervised settings train on a few **pixel-labelled** images plus many more that carry
either image-level labels only (``slrnet_semi``) or nothing at all (``slrnet_semi_wo_cls``). On
Pascal VOC the labelled part is the 1464 images of ``train.txt`` and the rest of the 10582 of
``train_aug.txt`` is the weak / unlabelled part; on any other dataset a fraction can be drawn by seed.

    >>> from slrnet.data import VOCSegmentation
    >>> from slrnet.data.splits import SemiSupervisedSplit, select_labelled
    >>> train = VOCSegmentation("data/shapes", "train")
    >>> labelled = select_labelled(train, labelled_ratio=0.05, seed=0)        # sorted dataset indices
    >>> semi = SemiSupervisedSplit(train, labelled, unlabelled="hidden", oversample_rate=7)
    >>> s = semi[0]       # as VOCSegmentation's sample, plus has_mask / has_labels for this split
    >>> # unlabelled items: mask all 255 (void) and, with unlabelled="hidden", labels all zero

Every item says whether it carries pixel labels (``has_mask``) and image labels (``has_labels``). The
masks of the unlabelled part are replaced by void **after** loading, so no pixel label of that part
can reach the model or the trainer; ``unlabelled="hidden"`` also zeroes its image labels (the
semi-supervised setting without image labels). ``unlabelled="drop"`` keeps the labelled part only:
the fully supervised baseline on the same few images. Oversampling repeats the labelled indices in
the index list (``oversample_rate`` copies in all), as the authors' ``VOCSegmentationSemi`` does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from slrnet.data.build import build_dataset
from slrnet.data.files import IMAGE_EXTENSIONS, VOID, DatasetError, DatasetFileNotFoundError
from slrnet.variants import VARIANTS, variant

UNLABELLED_MODES = ("image_labels", "hidden", "drop")


def read_name_list(list_file, root=None) -> list[str]:
    """Image names of a list file: bare names, or ``/JPEGImages/x.jpg [/Segmentation.../x.png]`` lines.

    A relative path is looked up as given, under ``root`` and under ``root/ImageSets/Segmentation``.
    """
    path = Path(list_file).expanduser()
    candidates = [path]
    if root is not None and not path.is_absolute():
        candidates += [Path(root) / path, Path(root) / "ImageSets" / "Segmentation" / path]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DatasetFileNotFoundError(f"dataset.labelled_list: list file not found: {list_file} "
                                       f"(looked at {[str(c) for c in candidates]})")
    names = []
    for line in found.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        first = fields[0]
        is_path = "/" in first or first.lower().endswith(IMAGE_EXTENSIONS)
        names.append(Path(first).stem if is_path else first)
    if not names:
        raise DatasetError(f"dataset.labelled_list: {found} is empty; expected one image name per line")
    return names


def _has_pixel_labels(dataset, index: int) -> bool:
    mask_paths = getattr(dataset, "mask_paths", None)
    return True if mask_paths is None else mask_paths[index] is not None


def select_labelled(dataset, labelled_list=None, labelled_ratio: float | None = None, seed: int = 0) -> list[int]:
    """Sorted indices of ``dataset`` (needs ``.names``) that keep their pixel labels.

    Exactly one of ``labelled_list`` (a list file of image names, e.g. VOC's ``train.txt`` inside
    ``train_aug.txt``) or ``labelled_ratio`` (a fraction in (0, 1] of the items, drawn among those with
    a mask by ``numpy.random.default_rng(seed)``; the same seed gives the same split) must be given.
    """
    if (labelled_list is None) == (labelled_ratio is None):
        raise ValueError("semi-supervised split: set exactly one of dataset.labelled_list (a list file of the "
                         f"pixel-labelled images) or dataset.labelled_ratio (a fraction), got "
                         f"labelled_list={labelled_list!r}, labelled_ratio={labelled_ratio!r}")
    n = len(dataset)
    if labelled_list is not None:
        names = read_name_list(labelled_list, getattr(dataset, "root", None))
        lookup = {name: i for i, name in enumerate(dataset.names)}
        missing = [name for name in names if name not in lookup]
        if missing:
            raise DatasetError(f"dataset.labelled_list: {len(missing)} of {len(names)} names in {labelled_list} "
                               f"are not in the training list ({n} items), e.g. {missing[:3]}; the labelled "
                               f"images must be a subset of the training images")
        chosen = sorted({lookup[name] for name in names})
        no_mask = [dataset.names[i] for i in chosen if not _has_pixel_labels(dataset, i)]
        if no_mask:
            raise DatasetError(f"dataset.labelled_list: {len(no_mask)} listed images have no mask file, "
                               f"e.g. {no_mask[:3]}; pixel-labelled images need their masks")
        return chosen
    ratio = float(labelled_ratio)
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"dataset.labelled_ratio: expected a fraction in (0, 1], got {labelled_ratio!r}")
    candidates = np.array([i for i in range(n) if _has_pixel_labels(dataset, i)], dtype=np.int64)
    count = max(1, int(round(ratio * n)))
    if count > len(candidates):
        raise DatasetError(f"dataset.labelled_ratio={ratio}: {count} pixel-labelled images requested but only "
                           f"{len(candidates)} of the {n} training images have a mask")
    rng = np.random.default_rng(int(seed))
    return sorted(int(i) for i in rng.choice(candidates, size=count, replace=False))


class SemiSupervisedSplit(Dataset):
    """A training set where only the ``labelled`` items keep their masks (see the module docstring).

    Args:
        dataset: a dataset whose samples are dicts with ``image``, ``mask``, ``labels`` (VOCSegmentation).
        labelled: indices of ``dataset`` with pixel labels (``select_labelled``).
        unlabelled: ``"image_labels"`` (the rest keeps its image labels), ``"hidden"`` (the rest has no
            labels at all) or ``"drop"`` (the rest is left out).
        oversample_rate: each labelled item appears this many times per epoch (>= 1).
    """

    def __init__(self, dataset, labelled, unlabelled: str = "image_labels", oversample_rate: int = 1):
        if unlabelled not in UNLABELLED_MODES:
            raise ValueError(f"SemiSupervisedSplit: unlabelled must be one of {UNLABELLED_MODES}, got {unlabelled!r}")
        if int(oversample_rate) != oversample_rate or oversample_rate < 1:
            raise ValueError(f"dataset.oversample_rate: expected an integer >= 1, got {oversample_rate!r}")
        n = len(dataset)
        labelled = sorted({int(i) for i in labelled})
        if not labelled:
            raise ValueError("SemiSupervisedSplit: the labelled part is empty; at least one pixel-labelled image "
                             "is needed")
        if labelled[0] < 0 or labelled[-1] >= n:
            raise IndexError(f"SemiSupervisedSplit: labelled indices must lie in [0, {n}), got "
                             f"[{labelled[0]}, {labelled[-1]}]")
        self.dataset, self.unlabelled_mode, self.oversample_rate = dataset, unlabelled, int(oversample_rate)
        self.labelled_indices = labelled
        is_labelled = np.zeros(n, dtype=bool)
        is_labelled[labelled] = True
        self._is_labelled = is_labelled
        self.unlabelled_indices = [] if unlabelled == "drop" else np.flatnonzero(~is_labelled).tolist()
        # every kept item once, then the labelled ones again (oversample_rate copies in all)
        base = labelled if unlabelled == "drop" else list(range(n))
        self.index = base + labelled * (self.oversample_rate - 1)
        self.class_names = getattr(dataset, "class_names", None)
        self.num_classes = getattr(dataset, "num_classes", None)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_labelled_items(self) -> int:
        """Items of one epoch that carry pixel labels (oversampling included)."""
        return len(self.labelled_indices) * self.oversample_rate

    def is_labelled(self, item: int) -> bool:
        return bool(self._is_labelled[self.index[item]])

    def __getitem__(self, item: int) -> dict:
        if not -len(self) <= item < len(self):
            raise IndexError(f"index {item} out of range for a split of {len(self)} items")
        base_index = self.index[item]
        sample = dict(self.dataset[base_index])
        if self._is_labelled[base_index]:
            sample["has_mask"], sample["has_labels"] = True, True
            return sample
        # unlabelled part: its pixel labels never leave this method
        sample["mask"] = torch.full_like(torch.as_tensor(sample["mask"]), VOID)
        sample["has_mask"] = False
        if self.unlabelled_mode == "hidden":
            sample["labels"] = torch.zeros_like(torch.as_tensor(sample["labels"]))
            sample["has_labels"] = False
        else:
            sample["has_labels"] = True
        return sample

    def __repr__(self) -> str:
        return (f"SemiSupervisedSplit({len(self.labelled_indices)} pixel-labelled x{self.oversample_rate}, "
                f"{len(self.unlabelled_indices)} unlabelled ({self.unlabelled_mode}), items={len(self)}, "
                f"dataset={self.dataset!r})")


def build_semi_dataset(cfg_dataset: dict, model_name: str, seed: int, unlabelled: str | None = None,
                       split: str = "train", train: bool = True) -> SemiSupervisedSplit:
    """The semi-supervised training set of a config: ``build_dataset`` + the labelled split.

    Uses ``dataset.labelled_list`` or ``dataset.labelled_ratio`` (with ``seed``, normally ``misc.seed``)
    and ``dataset.oversample_rate``; the unlabelled part follows the model (``slrnet_semi``: image
    labels kept; ``slrnet_semi_wo_cls``: hidden) unless ``unlabelled`` says otherwise ("drop": labelled only).
    """
    if unlabelled is None:
        spec = variant(model_name)
        if not spec.semi_supervised:
            semi = sorted(v.name for v in VARIANTS.values() if v.semi_supervised)
            raise ValueError(f"model.name: {model_name!r} is not a semi-supervised model; expected one of {semi}")
        unlabelled = spec.unlabelled
    base = build_dataset(cfg_dataset, split, train=train)
    labelled = select_labelled(base, cfg_dataset.get("labelled_list"), cfg_dataset.get("labelled_ratio"), seed)
    return SemiSupervisedSplit(base, labelled, unlabelled=unlabelled,
                               oversample_rate=int(cfg_dataset.get("oversample_rate") or 1))


def build_training_sets(cfg: dict, train_set=None, val_set=None):
    """(training set, val set) from the config's ``dataset`` section, for the sets not given: the semi-supervised
    variants get their labelled / unlabelled split (``dataset.labelled_list`` / ``labelled_ratio``); an embedded
    dataset is generated on first use."""
    if train_set is None and variant(cfg["model"]["name"]).semi_supervised:
        train_set = build_semi_dataset(cfg["dataset"], cfg["model"]["name"], seed=int(cfg["misc"]["seed"]))
    if train_set is None:
        train_set = build_dataset(cfg["dataset"], "train", train=True)
    if val_set is None:
        val_set = build_dataset(cfg["dataset"], "val", train=False)
    return train_set, val_set

