"""Class-balanced image sampling: the COCO recipe's epochs of ``train.num_samples`` draws.

COCO's 80 classes are far from balanced (person is in 45 % of the images, toaster in 0.2 %). The authors'
``tools/train_coco_wss_fp32.py`` therefore draws each epoch's images with replacement (40,000 per epoch) with
weights from the image labels (``datasets/coco.py`` ``sample_weights``):

    class weight   w_c = N / (n_c + 1),   N = sum_c n_c,  n_c = images holding class c
    image weight   v_i = sum_c y_ic w_c / (1 + sum_c y_ic)

so an image with a rare class is drawn more often; an image without any label is never drawn.

    >>> weights = class_balanced_weights(dataset.image_labels())          # (N,) float64
    >>> sampler = WeightedEpochSampler(weights, num_samples=40000, seed=0)
    >>> sampler.set_epoch(3); indices = list(sampler)
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def class_balanced_weights(image_labels) -> torch.Tensor:
    """(N, K-1) multi-hot image labels -> (N,) float64 draw weights (module docstring)."""
    labels = torch.as_tensor(np.asarray(image_labels), dtype=torch.float64)
    if labels.dim() != 2:
        raise ValueError(f"class_balanced_weights: expected image labels (N, K-1), got shape {tuple(labels.shape)}")
    counts = labels.sum(dim=0)                                       # (K-1,) images per class
    class_weights = counts.sum() / (counts + 1)                      # (K-1,)
    return (labels * class_weights).sum(dim=-1) / (1 + labels.sum(dim=-1))


class WeightedEpochSampler(Sampler[int]):
    """``num_samples`` indices per epoch, drawn with replacement in proportion to ``weights``.

    The draw depends only on (``seed``, epoch), so every process of a DDP run draws the same list and keeps
    every ``world``-th index from ``rank`` on: ``num_samples // world`` indices each, disjoint positions.
    """

    def __init__(self, weights, num_samples: int, seed: int = 0, rank: int = 0, world: int = 1):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.weights.dim() != 1 or not bool((self.weights >= 0).all()) or float(self.weights.sum()) <= 0:
            raise ValueError("WeightedEpochSampler: weights must be a 1-D tensor of non-negative numbers, not all 0 "
                             "(does any training image have an image label?)")
        if num_samples < world:
            raise ValueError(f"train.num_samples={num_samples} must be at least the number of processes ({world})")
        self.num_samples, self.seed, self.rank, self.world = int(num_samples), int(seed), int(rank), int(world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        drawn = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        per_rank = self.num_samples // self.world
        return iter(drawn[self.rank::self.world][:per_rank].tolist())

    def __len__(self) -> int:
        return self.num_samples // self.world


class TrainingBatches:
    """A trainer's batches, epoch by epoch (the config's ``train`` section): the training set shuffled with a
    generator seeded by ``misc.seed`` and the epoch, or ``train.num_samples`` class-balanced draws
    (:class:`WeightedEpochSampler`), or under torchrun this rank's shard; full batches only, at most
    ``train.max_steps_per_epoch`` of them.

        >>> batches = TrainingBatches(train_set, cfg, rank=0, world=1)
        >>> for step, batch in zip(range(batches.steps_per_epoch), batches.loader(epoch)): ...
    """

    def __init__(self, train_set, cfg: dict, rank: int = 0, world: int = 1, pin_memory: bool = False):
        t = cfg["train"]
        self.train_set, self.rank, self.world, self.pin_memory = train_set, rank, world, pin_memory
        self.seed, self.batch_size, self.num_workers = int(cfg["misc"]["seed"]), t["batch_size"], t["num_workers"]
        self.weighted = None
        if t["num_samples"]:
            if not hasattr(train_set, "image_labels"):
                raise ValueError(f"train.num_samples: the training set ({type(train_set).__name__}) has no "
                                 f"image_labels() to weight the draw by")
            self.weighted = WeightedEpochSampler(class_balanced_weights(train_set.image_labels()), t["num_samples"],
                                                 seed=self.seed, rank=rank, world=world)
        n_images = len(self.weighted) * world if self.weighted else len(train_set)
        n_batches = n_images // (self.batch_size * world)
        if n_batches == 0:
            raise ValueError(f"train.batch_size={self.batch_size} x {world} process(es) is larger than the "
                             f"training set ({len(train_set)} images)")
        self.steps_per_epoch = min(n_batches, t["max_steps_per_epoch"]) if t["max_steps_per_epoch"] else n_batches

    def loader(self, epoch: int):
        from torch.utils.data import DataLoader, DistributedSampler

        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        sampler = self.weighted
        if sampler is not None:
            sampler.set_epoch(epoch)
        elif self.world > 1:
            sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank, shuffle=True,
                                         seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=sampler is None, sampler=sampler,
                          drop_last=True, num_workers=self.num_workers, generator=g, pin_memory=self.pin_memory,
                          persistent_workers=False)
