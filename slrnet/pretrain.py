"""Classification pretraining of the tiny backbone: the teaching profile's stand-in for ImageNet weights.

SLRNet never starts from random weights: its backbones (WideResNet-38, ResNet-101) come pretrained on
ImageNet classification (METHOD.md section 1), and every number of the paper, the fully supervised
baselines included, is measured on top of those features. The tiny CPU backbone has no released
weights and nothing can be downloaded here, so this module makes the equivalent locally: it trains the
backbone, with a global-average-pooled 1x1 classifier and the multi-label soft-margin loss, to name the
objects in images drawn from an embedded dataset's generator in its *pretraining* stream (``STREAMS``). That
stream has its own split code in the generator's seed sequence (``slrnet.data.generated.PRETRAIN_SPLIT_CODE``),
so no train or val image of the dataset is ever seen, just as ImageNet holds none of VOC's images (but many of
its classes). For the photos dataset the stream alternates composed scenes with single views of one photograph
(an object's or a scene's): the ImageNet-like, one-object-per-image part, which is what makes its features
useful (full supervision on photos, val mIoU after 4 quick epochs: 0.20 from composed scenes alone, 0.36 with the
views; docs/MEASUREMENTS.md, "Backbone pretraining on photos"). Only image-level class names are used; the
classifier is thrown away.

    >>> from slrnet.pretrain import ensure_pretrained_backbone
    >>> path = ensure_pretrained_backbone("weights/tiny_w16_shapes.pth", width=16)   # shipped: returns at once
    >>> path = ensure_pretrained_backbone("/tmp/t.pth", width=8, steps=20, num_images=64)    # a tiny run

    python -m slrnet pretrain --output weights/tiny_w16_photos.pth --force    # make a shipped file again

The file is a plain backbone ``state_dict`` (``Backbone.load_pretrained`` reads it with
``weights_only=True``), written atomically; a ``<file>.json`` beside it records the options, the generator
versions, the file's SHA-256 and the final training accuracy, and a file whose record does not match the
options asked for (or whose bytes no longer match the record) is made again. The quick configs'
(``configs/shapes_*.yaml``, ``configs/photos_*.yaml``) ship in ``weights/``, as a VOC run starts from downloaded
ImageNet weights; training a model whose config names a missing or stale tiny-backbone file calls this first
(``slrnet.train.Trainer``), on the stream the file's name ends with (:func:`stream_of`), like the datasets are
generated on first use. On 2 CPU cores the shapes default (width 16, 4000 images, 2000 steps of 16) takes
about 50 s and reaches ~0.75 exact-match accuracy (all six labels right) on its training stream; the photos
default (``STREAM_DEFAULTS``, 8000 steps) 2.5-5 min (the record holds the time).
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.utils import file_sha256

DEFAULT_OPTIONS = {
    "num_images": 4000,    # pretraining images, rendered in memory (~9 s), never written to disk
    "image_size": 128,     # as the default dataset
    "input_size": 96,      # images are resized to the training crop size of the quick profile
    "steps": 2000,
    "batch_size": 16,
    "lr": 0.05,            # SGD Nesterov, momentum 0.9, weight decay 5e-4, cosine decay to 0
    "seed": 0,
    "stream": "shapes",    # which generator draws the images: shapes | photos | mixed (see STREAMS)
}


# a stream's own defaults over DEFAULT_OPTIONS: real photographs take longer to tell apart than flat shapes
STREAM_DEFAULTS = {"photos": {"num_images": 8000, "steps": 8000}}


def full_options(**options) -> dict:
    """Defaults filled in (the stream's own, then DEFAULT_OPTIONS) and checked; unknown keys and bad values are
    errors that name the key."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"pretrain: unknown option(s) {unknown}; expected some of {sorted(DEFAULT_OPTIONS)}")
    opts = {**DEFAULT_OPTIONS, **STREAM_DEFAULTS.get(options.get("stream", DEFAULT_OPTIONS["stream"]), {}), **options}
    for key, value in opts.items():
        if key == "stream":
            if value not in STREAMS:
                raise ValueError(f"pretrain: option stream must be one of {STREAMS}, got {value!r}")
            continue
        if key == "lr":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= (0 if key == "seed" else 1)
        if not ok:
            kind = {"lr": "a positive number", "seed": "a non-negative integer"}.get(key, "a positive integer")
            raise ValueError(f"pretrain: option {key} must be {kind}, got {value!r}")
        opts[key] = float(value) if key == "lr" else int(value)   # plain numbers: the .json record holds them
    return opts


STREAMS = ("shapes", "photos", "photo_scenes", "mixed")
# photos: views of single photographs and composed scenes in turn; photo_scenes: composed scenes only;
# mixed: shapes and photos in turn, one multi-hot vector over both


def _generator(name: str):
    from slrnet.data.build import GENERATORS

    return GENERATORS[name]


def _drawers(stream: str, image_size: int, seed: int) -> list[tuple[Callable, int, int]]:
    """[(draw(index) -> (image, mask), label offset, number of classes)], used in turn by pretraining_images."""
    from slrnet.data.generated import PRETRAIN_SPLIT_CODE

    def composed(name):
        gen = _generator(name)
        return (lambda i: gen.sample(PRETRAIN_SPLIT_CODE, i, image_size=image_size, seed=seed)), len(gen.classes) - 1

    def views(i):
        from slrnet.data.photos import render_view
        return render_view(np.random.default_rng([seed, PRETRAIN_SPLIT_CODE, i, 1]), image_size)

    if stream == "shapes":
        parts = [composed("shapes")]
    elif stream == "photo_scenes":
        parts = [composed("photos")]
    elif stream == "photos":
        draw, n = composed("photos")
        return [(draw, 0, n), (views, 0, n)]
    else:
        parts = [composed("shapes"), composed("photos")]
    offsets = np.cumsum([0] + [n for _, n in parts])
    return [(draw, int(offset), n) for (draw, n), offset in zip(parts, offsets)]


def pretraining_images(num_images: int, image_size: int = 128, seed: int = 0,
                       stream: str = "shapes") -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``num_images`` of a pretraining stream -> (uint8 (N, 3, S, S), float (N, C) multi-hot labels).

    ``stream`` (STREAMS): "shapes" (C = 6: composed shapes scenes); "photo_scenes" (C = 10: composed photos
    scenes); "photos" (C = 10: composed photos scenes and, in turn, single views of one photograph each, an
    object's or a scene's, the ImageNet-like part, ``slrnet.data.photos.render_view``); "mixed" (shapes and
    photos scenes in turn, C = 16, the shapes classes first). Every image comes from its generator's
    pretraining split code, never from the dataset's train or val stream.
    """
    from slrnet.data.files import VOID
    from slrnet.utils import progress

    if stream not in STREAMS:
        raise ValueError(f"pretrain: stream must be one of {STREAMS}, got {stream!r}")
    drawers = _drawers(stream, image_size, seed)
    num_classes = max(offset + n for _, offset, n in drawers)
    images = np.empty((num_images, image_size, image_size, 3), dtype=np.uint8)
    labels = np.zeros((num_images, num_classes), dtype=np.float32)
    for i in progress(range(num_images), desc="pretraining images", leave=False):
        draw, offset, _ = drawers[i % len(drawers)]
        image, mask = draw(i // len(drawers))      # each part's images are its own stream's first ones, in order
        images[i] = image
        present = np.unique(mask)
        present = present[(present > 0) & (present != VOID)]
        labels[i, offset + present - 1] = 1.0
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def train_classifier(backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int,
                     batch_size: int = 16, lr: float = 0.05, input_size: int = 96, seed: int = 0,
                     device: str | torch.device = "auto") -> list[dict]:
    """Train ``backbone`` + a GAP 1x1 classifier on (images (N, 3, S, S) uint8, labels (N, C)) in place.

    Batches are drawn with replacement; each is resized to ``input_size`` and every other one is
    mirrored. Returns a history of {"step", "loss", "accuracy"} (exact match, exponential running mean)
    every 100 steps.
    """
    from slrnet.data.transforms import MEAN, STD
    from slrnet.utils import progress, resolve_device

    device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    classifier = nn.Conv2d(backbone.deep_channels, labels.shape[1], 1)
    backbone.to(device).train()
    classifier.to(device)
    params = list(backbone.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    history, running = [], None
    bar = progress(range(steps), desc="pretraining the backbone", leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        index = torch.randint(0, len(images), (batch_size,), generator=generator)
        x = (images[index].to(device).float() - mean) / std                    # (B, 3, S, S)
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
        if step % 2:
            x = x.flip(3)
        y = labels[index].to(device)                                           # (B, C)
        logits = classifier(backbone(x)["deep"]).mean((2, 3))                  # (B, C) GAP of class maps
        loss = F.multilabel_soft_margin_loss(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain: loss is {loss.item()} at step {step}; lower the lr (now {lr})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = ((logits > 0) == (y > 0.5)).all(1).float().mean().item()
        running = accuracy if running is None else 0.95 * running + 0.05 * accuracy
        if (step + 1) % 100 == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": float(loss.item()), "accuracy": float(running)})
    backbone.eval()
    return history


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _record(width: int, opts: dict) -> dict:
    parts = {"shapes": ("shapes",), "mixed": ("shapes", "photos")}.get(opts["stream"], ("photos",))
    versions = {p: _generator(p).version for p in parts}
    return {"backbone": "tiny", "width": int(width), "generator_versions": versions, "options": opts}


def read_record(path) -> dict | None:
    """The ``<file>.json`` record beside a weights file made here, or None (absent or unreadable)."""
    try:
        return json.loads(_record_path(Path(path)).read_text())
    except (OSError, ValueError):
        return None


def is_current(path, width: int, **options) -> bool:
    """True when ``path`` exists and its record matches ``width``, ``options``, the generator version and, when
    the record holds one, the file's SHA-256."""
    path = Path(path)
    saved = read_record(path) if path.is_file() else None
    if saved is None:
        return False
    expected = _record(width, full_options(**options))
    if any(saved.get(k) != v for k, v in expected.items()):
        return False
    return "sha256" not in saved or saved["sha256"] == file_sha256(path)


def ensure_pretrained_backbone(path, width: int = 16, device: str | torch.device = "auto", force: bool = False,
                               **options) -> Path:
    """Return ``path`` holding classification-pretrained tiny-backbone weights, training them when needed.

    An existing file is reused when its ``.json`` record matches (``force`` makes it again regardless; the old
    file stays until the new one is written); a file without a record (not made here) is never overwritten
    (an error instead). See the module docstring.
    """
    from slrnet.checkpoint import save_checkpoint
    from slrnet.models.backbones import build_backbone
    from slrnet.utils import atomic_write_bytes

    path = Path(path).expanduser()
    opts = full_options(**options)
    if not force and is_current(path, width, **opts):
        return path
    if path.exists() and not _record_path(path).is_file():
        raise FileExistsError(f"pretrain: {path} exists but has no {_record_path(path).name} record from "
                              f"slrnet.pretrain; refusing to overwrite it. Remove it or name another file.")
    start = time.perf_counter()
    # fork_rng: a training run that makes the file first must initialise its model exactly as one that finds it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opts["seed"])
        backbone = build_backbone("tiny", width=width)
        images, labels = pretraining_images(opts["num_images"], opts["image_size"], opts["seed"], opts["stream"])
        history = train_classifier(backbone, images, labels, opts["steps"], opts["batch_size"], opts["lr"],
                                   opts["input_size"], opts["seed"], device)
    save_checkpoint(path, {k: v.detach().cpu() for k, v in backbone.state_dict().items()})
    record = {**_record(width, opts), "sha256": file_sha256(path), "final_accuracy": history[-1]["accuracy"],
              "final_loss": history[-1]["loss"], "seconds": round(time.perf_counter() - start, 1),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "history": history}
    atomic_write_bytes(_record_path(path), (json.dumps(record, indent=1) + "\n").encode())
    return path


def stream_of(path) -> str:
    """The pretraining stream of a tiny-backbone file made here, from its name: ``tiny_w16_photos.pth`` -> "photos".

    A name that does not end in ``_<stream>`` (one of STREAMS) is for the default stream, "shapes".
    """
    suffix = Path(path).stem.rsplit("_", 1)[-1]
    return suffix if suffix in STREAMS else DEFAULT_OPTIONS["stream"]


def width_of(path) -> int:
    """The tiny-backbone width a file's name gives, ``tiny_w16_photos.pth`` -> 16; else the model default."""
    from slrnet.models.backbones import tiny

    match = re.search(r"_w(\d+)(?:_|$)", Path(path).stem)
    return int(match.group(1)) if match else tiny.DEFAULT_WIDTH


def resolve_pretrained(cfg_model: dict) -> str:
    """The config's ``model.pretrained`` as a path ('' stays '').

    For the tiny backbone, a missing file, or one made here for other options (its record differs: another
    width, say), is (re)made by :func:`ensure_pretrained_backbone` on the stream its name gives
    (:func:`stream_of`); a file without a record is the user's own and is used as it is.
    """
    from slrnet.data.build import resolve_data_root
    from slrnet.models.backbones import tiny

    if not cfg_model.get("pretrained"):
        return ""
    path = resolve_data_root(cfg_model["pretrained"])
    if cfg_model.get("backbone") == "tiny" and (not path.exists() or _record_path(path).is_file()):
        width = int((cfg_model.get("backbone_kwargs") or {}).get("width", tiny.DEFAULT_WIDTH))
        ensure_pretrained_backbone(path, width=width, stream=stream_of(path))
    return str(path)


def add_cli_arguments(parser) -> None:
    parser.add_argument("--output", required=True,
                        help="weights file to write, e.g. weights/tiny_w16_photos.pth (its record goes to <file>.json)")
    parser.add_argument("--stream", choices=STREAMS, default=None,
                        help="pretraining stream (default: the one the file name ends with, else shapes)")
    parser.add_argument("--width", type=int, default=None,
                        help="tiny-backbone width (default: the file name's, tiny_w16_... -> 16, else the model default)")
    for key in ("num_images", "steps", "batch_size", "input_size", "image_size", "seed"):
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=int, default=None,
                            help=f"default: the stream's ({DEFAULT_OPTIONS[key]} for shapes)")
    parser.add_argument("--lr", type=float, default=None, help=f"default {DEFAULT_OPTIONS['lr']}")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    parser.add_argument("--force", action="store_true",
                        help="make the file again even when its record says it is current (a file made here only)")


def cli_run(args) -> int:
    path = Path(args.output)
    options = {k: getattr(args, k) for k in DEFAULT_OPTIONS if k != "stream" and getattr(args, k) is not None}
    options["stream"] = args.stream or stream_of(path)
    width = args.width or width_of(path)
    made = args.force or not is_current(path, width, **options)
    ensure_pretrained_backbone(path, width=width, device=args.device, force=args.force, **options)
    record = read_record(path) or {}
    state = "made" if made else "current, kept"
    print(f"{path}: {state}; stream {options['stream']}, width {width}, final exact-match accuracy "
          f"{record.get('final_accuracy', float('nan')):.3f}, {record.get('seconds', float('nan'))} s to make")
    return 0
