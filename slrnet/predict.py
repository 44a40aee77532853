"""One image, one command: a trained model's mask, an overlay and the classes found, for any image files.

    python -m slrnet predict --checkpoint outputs/runs/shapes_quick/demo/checkpoints/best.pth photo.jpg
    python -m slrnet predict --checkpoint model.pth --config configs/voc_wss_resnet38.yaml a.jpg b.png --output out/
    python -m slrnet predict --checkpoint P --scales 1 --no-flip IMAGE        # one view: fastest
    python -m slrnet predict --checkpoint P --crf IMAGE                      # refined by the dense CRF

For each image it writes ``<stem>_mask.png`` (class indices in the suite's one VOC palette,
``slrnet.data.files.save_palette_png``) and ``<stem>_overlay.png`` (the image with the class colours blended over
every non-background pixel) beside the image, or into ``--output``, and prints the classes in the predicted mask::

    photo.jpg (64x48): 2 classes -> out/photo_mask.png, out/photo_overlay.png
      circle      score 0.912   12.3% of the pixels
      square      score 0.405    3.1% of the pixels

The score is the image-level class probability, sigmoid of the class score averaged over the views (the
number the class filter compares with ``test.fp_cut``); a model without class scores (the semi-supervised
variant without image labels, the DeepLabV3+ second stage) gets the pixel share alone.

The model comes from ``slrnet.models.loading.load_trained_model``: a checkpoint ``python -m slrnet train`` wrote
(its config inside, or the run folder's ``config.yaml``), or an official-format checkpoint with ``--config``.
Test time is the config's ``test`` section (``slrnet.infer.TestConfig``: scales, flip, class filter, CRF),
run by ``slrnet.infer.Predictor``; ``--scales``, ``--no-flip`` and ``--crf`` change it. Ground-truth image labels
(``test.use_cls_label``) do not exist for an arbitrary image, so they are never used here. Images are read by
the dataset's reader (``slrnet.data.files.load_image``, any mode -> RGB) and normalised by the data's
``normalize_to_tensor`` (ImageNet MEAN / STD), as at training; a JPEG's EXIF orientation is applied first, so
the mask lines up with the image as viewers show it. Class names: ``--classes FILE``, else the config's dataset
(``classes.txt`` of its root, the embedded datasets' classes), else the VOC names / ``class_<i>``.

Every bad image (missing, a folder, not an image) gets one ``error:`` line and the others are still predicted;
the exit status is then 2. A checkpoint that does not fit the config is one ``error:`` line before any image.

    >>> from slrnet.predict import predict_image, save_prediction, class_names_for
    >>> result = predict_image(Predictor(model, TestConfig.from_config(cfg)), "photo.jpg", class_names_for(cfg, 7))
    >>> result["classes"]       # [{"index": 1, "name": "circle", "score": 0.91, "share": 0.12}, ...]
    >>> save_prediction(result, "out/")     # (out/photo_mask.png, out/photo_overlay.png)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from slrnet.data.files import DatasetError, DatasetFileNotFoundError, load_image, save_palette_png, voc_colormap
from slrnet.data.transforms import normalize_to_tensor
from slrnet.infer import Predictor, TestConfig, parse_scales

OVERLAY_ALPHA = 0.55          # the figures' opacity (slrnet.viz.common.overlay)
MASK_SUFFIX, OVERLAY_SUFFIX = "_mask.png", "_overlay.png"


# ----------------------------------------------------------------------------- images and class names

def check_image_file(path) -> Path:
    """``path`` as a Path if it is an image file PIL recognises; otherwise an error that says what it is."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise DatasetError(f"{path} is a directory; expected an image file (JPEG or PNG)")
    if not path.exists():
        raise DatasetFileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path):                 # reads the header only
            pass
    except UnidentifiedImageError:
        raise DatasetError(f"{path} is not an image (no image format recognised in it); expected a JPEG or PNG "
                           f"file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:   # permissions, I/O, a bad header
        raise DatasetError(f"{path} cannot be read as an image ({err})") from None
    return path


def read_image(path) -> Image.Image:
    """An image file as RGB, upright (EXIF orientation applied), by the dataset's reader (``load_image``)."""
    return load_image(path)                             # decodes now: a truncated file fails here, named


def class_names_for(cfg: dict, num_classes: int, classes_file=None) -> list[str]:
    """Names of the ``num_classes`` classes (background first).

    ``classes_file`` (a ``classes.txt``) when given (it must hold ``num_classes`` names); else the first source
    with exactly ``num_classes`` names of: the config dataset's ``classes.txt`` (``val_root``, then ``root``),
    the embedded dataset's generator (shapes, photos); else ``slrnet.metrics.default_class_names``."""
    from slrnet.data.build import GENERATORS, resolve_data_root
    from slrnet.data.voc import read_classes_file
    from slrnet.metrics import default_class_names

    if classes_file is not None:
        names = list(read_classes_file(classes_file))
        if len(names) != num_classes:
            raise ValueError(f"--classes {classes_file} names {len(names)} classes but the model predicts "
                             f"{num_classes} (background included)")
        return names
    dataset = dict((cfg or {}).get("dataset") or {})
    candidates = []
    for key in ("val_root", "root"):
        if dataset.get(key):
            try:
                candidates.append(resolve_data_root(dataset[key]) / "classes.txt")
            except (OSError, ValueError):
                pass
    for path in candidates:
        try:
            if path.is_file():
                names = list(read_classes_file(path))
                if len(names) == num_classes:
                    return names
        except (OSError, ValueError):          # an unreadable classes.txt: the names are only labels here
            continue
    generator = GENERATORS.get(str(dataset.get("name", "")).lower())
    if generator is not None and len(generator.classes) == num_classes:
        return list(generator.classes)
    return default_class_names(num_classes)


def overlay_image(image_rgb: np.ndarray, mask: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """uint8 (H, W, 3): the palette colour of each non-background pixel blended over the image with ``alpha``
    (the same blend as the figures' ``slrnet.viz.common.overlay``)."""
    mask = np.asarray(mask)
    out = np.asarray(image_rgb, dtype=np.float32).copy()
    fg = mask > 0
    colours = voc_colormap()[mask.astype(np.int64).clip(0, 255)].astype(np.float32)
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[fg]
    return out.clip(0, 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- the library function

def predict_image(predictor: Predictor, path, class_names: Sequence[str] | None = None,
                  alpha: float = OVERLAY_ALPHA) -> dict:
    """Predict one image file with ``predictor`` (its ``test``: scales, flip, class filter, CRF).

    Returns ``path``, ``size`` (W, H), ``mask`` uint8 (H, W) class indices, ``overlay`` uint8 (H, W, 3),
    ``classes``: the foreground classes in the mask, best first, each ``{"index", "name", "score", "share"}``
    (``score`` = sigmoid of the averaged class score, None for a model without class scores; ``share`` = the
    fraction of pixels), ``background_share``, ``probabilities``: every foreground class's score by name (None
    without scores), ``kept``: the classes the filter kept (1-based; None = all).
    """
    if predictor.test.use_cls_label:
        raise ValueError("predict: test.use_cls_label needs ground-truth image labels, which a single image does "
                         "not have; use a TestConfig with use_cls_label=False")
    path = Path(path)
    image = read_image(path)
    rgb = np.array(image, dtype=np.uint8)                                       # (H, W, 3), writable (the CRF)
    x = normalize_to_tensor(image)                                              # (3, H, W), as the val transform
    scores, probs = predictor.probabilities(x)                                  # (K-1,) or None, (K, H, W)
    scores, keep, filtered = predictor.filter(scores, probs)
    num_classes = filtered.shape[0]
    if num_classes > 255:
        raise ValueError(f"at most 255 classes fit a palette PNG, the model predicts {num_classes}")
    names = list(class_names) if class_names is not None else None
    if names is None or len(names) != num_classes:
        from slrnet.metrics import default_class_names
        names = default_class_names(num_classes)
    if predictor.test.apply_crf:
        from slrnet.crf import crf_argmax
        mask = crf_argmax(rgb, filtered.float().cpu().numpy(), predictor.test.crf_iters).astype(np.uint8)
    else:
        mask = filtered.argmax(0).to(torch.uint8).cpu().numpy()                 # (H, W)
    prob = None if scores is None else torch.sigmoid(scores.float()).cpu().numpy()   # (K-1,)
    counts = np.bincount(mask.ravel(), minlength=num_classes)
    total = max(int(mask.size), 1)
    classes = [{"index": int(c), "name": names[c], "share": float(counts[c]) / total,
                "score": None if prob is None else float(prob[c - 1])}
               for c in range(1, num_classes) if counts[c] > 0]
    classes.sort(key=lambda r: (-(r["score"] if r["score"] is not None else r["share"]), -r["share"]))
    return {"path": str(path), "size": image.size, "mask": mask, "overlay": overlay_image(rgb, mask, alpha),
            "classes": classes, "background_share": float(counts[0]) / total,
            "probabilities": None if prob is None else {names[c]: float(prob[c - 1]) for c in range(1, num_classes)},
            "kept": None if keep is None else (torch.nonzero(keep).flatten() + 1).tolist()}


def output_paths(path, output_dir=None) -> tuple[Path, Path]:
    """(``<dir>/<stem>_mask.png``, ``<dir>/<stem>_overlay.png``); ``<dir>`` is the image's own folder by default."""
    path = Path(path)
    folder = Path(output_dir).expanduser() if output_dir is not None else path.parent
    return folder / f"{path.stem}{MASK_SUFFIX}", folder / f"{path.stem}{OVERLAY_SUFFIX}"


def save_prediction(result: dict, output_dir=None) -> tuple[Path, Path]:
    """Write a :func:`predict_image` result's mask (palette PNG) and overlay (RGB PNG); returns their paths."""
    mask_path, overlay_path = output_paths(result["path"], output_dir)
    save_palette_png(result["mask"], mask_path)                              # makes the folder
    Image.fromarray(result["overlay"], "RGB").save(overlay_path, format="PNG")
    return mask_path, overlay_path


def format_result(result: dict, written: Sequence[Path] = ()) -> str:
    """The lines the command prints for one image."""
    w, h = result["size"]
    n = len(result["classes"])
    found = f"{n} class{'es' if n != 1 else ''}" if n else "background only"
    head = f"{Path(result['path']).name} ({w}x{h}): {found}"
    if written:
        head += " -> " + ", ".join(str(p) for p in written)
    width = max([len(r["name"]) for r in result["classes"]] + [10])
    lines = [head]
    for r in result["classes"]:
        score = f"score {r['score']:.3f}  " if r["score"] is not None else ""
        lines.append(f"  {r['name']:<{width}}  {score}{100 * r['share']:5.1f}% of the pixels")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line

def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--checkpoint", required=True,
                        help="trained weights: a `python -m slrnet train` checkpoint, or an official one with --config")
    parser.add_argument("--config", default=None,
                        help="YAML config the model was trained with (default: the checkpoint's own / its run's)")
    parser.add_argument("--output", default=None,
                        help="folder for <stem>_mask.png and <stem>_overlay.png (default: beside each image)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 | mps")
    parser.add_argument("--scales", type=parse_scales, default=None,
                        help="comma-separated test scales (default: the config's test.scales)")
    parser.add_argument("--no-flip", dest="no_flip", action="store_true",
                        help="no horizontal-flip averaging (default: the config's test.flip)")
    parser.add_argument("--crf", action="store_true", help="refine with the dense CRF (default: test.apply_crf)")
    parser.add_argument("--classes", default=None,
                        help="classes.txt with the class names, background first (default: the config's dataset)")
    parser.add_argument("--alpha", type=float, default=OVERLAY_ALPHA,
                        help=f"opacity of the class colours in the overlay (default {OVERLAY_ALPHA})")


def _error(err: BaseException) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return f"error: {text}"


def cli_run(args: argparse.Namespace) -> int:
    from slrnet.models.loading import load_trained_model
    from slrnet.utils import resolve_device

    if not 0 <= args.alpha <= 1:
        raise ValueError(f"--alpha: expected an opacity in [0, 1], got {args.alpha}")
    debug = bool(getattr(args, "debug", False))
    failed = 0

    def report(err: BaseException) -> None:
        nonlocal failed
        if debug:
            raise err
        failed += 1
        print(_error(err), file=sys.stderr, flush=True)

    # every path checked before the model loads: a typo costs no model load and no partial outputs
    images: list[Path] = []
    claimed: dict[Path, Path] = {}              # output file -> the image that writes it
    inputs = {Path(p).expanduser().resolve() for p in args.images}
    for name in args.images:
        try:
            path = check_image_file(name)
            for out in output_paths(path, args.output):
                key = out.resolve()
                if key in inputs:
                    raise ValueError(f"{path}: its output {out} is one of the input images; use --output DIR")
                if key in claimed:
                    raise ValueError(f"{path}: its output {out} is also {claimed[key]}'s; rename one image or "
                                     f"predict them in separate --output folders")
            for out in output_paths(path, args.output):
                claimed[out.resolve()] = path
            images.append(path)
        except (ValueError, OSError) as err:
            report(err)
    if not images:
        return 2

    device = resolve_device(args.device)
    model, cfg = load_trained_model(args.checkpoint, args.config, device, prepare=True)
    test = TestConfig.from_config(cfg, scales=args.scales, flip=False if args.no_flip else None,
                                  apply_crf=True if args.crf else None, use_cls_label=False)
    num_classes = getattr(model, "num_classes", None) or int(cfg["model"]["num_classes"])
    class_names = class_names_for(cfg, num_classes, args.classes)
    predictor = Predictor(model, test, device=device)
    for path in images:
        try:
            result = predict_image(predictor, path, class_names, alpha=args.alpha)
            written = save_prediction(result, args.output)
        except (ValueError, OSError) as err:
            report(err)
            continue
        print(format_result(result, written), flush=True)
    return 2 if failed else 0
