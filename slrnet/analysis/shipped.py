"""The quick models that ship in ``weights/``, so that notebooks 04-06 run alone without training.

For an embedded dataset (``shapes``; ``photos`` adds ``_photos`` to each name):

* ``weights/weakly_supervised_quick.pth`` -- notebook 02's model: ``configs/<dataset>_quick.yaml`` under the quick
  profile, seed 0;
* ``weights/second_stage_quick.pth``      -- notebook 06's DeepLabV3+ on the CRF pseudo labels that this model
  exports for every training image;
* ``weights/real_masks_quick.pth``        -- notebook 06's real-mask model: the same DeepLabV3+ on the real masks.

Each file has a record beside it, ``<file>.json``: the command and the code (git commit) that made it, the config it
trained with, the SHA-256 of the file, of its starting weights and (second stages) of the first-stage file whose
pseudo labels it learned from, the dataset generator's version, what it scored, and a *reading check*: the
single-scale mIoU of the model on a few freshly generated images. :func:`stale_reasons` compares a record with
today's configs and files, and ``tests/test_shipped.py`` also repeats the reading check with today's code.

The notebooks use a shipped model only in the quick profile, for an embedded dataset, when no model of their own
run exists (``slrnet.analysis.trained_model.load_or_train``); ``make run`` trains notebook 02 and analyses that.

    python -m slrnet.analysis.shipped --dataset shapes      # make the three again (about 12 minutes on 2 CPU cores)
    >>> from slrnet.analysis.shipped import shipped_model
    >>> shipped_model("weakly_supervised", "shapes", profile="quick")   # the path, or None (absent / stale)
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from slrnet.utils import file_sha256, repo_root

KINDS = ("weakly_supervised", "second_stage", "real_masks")
PROFILE = "quick"
SEED = 0
READING_CHECK = {"num_train": 1, "num_val": 8, "seed": 12345}   # a few images of the generator, its own seed
EMBEDDED_MASK_DIR = "SegmentationClass"                         # where the embedded datasets keep their masks
# paths of the machine that made the file: not part of what the record compares
_MACHINE_KEYS = (("misc", "log_dir"), ("misc", "device"), ("dataset", "root"), ("dataset", "val_root"),
                 ("dataset", "train_list"))


def shipped_path(kind: str, dataset: str = "shapes") -> Path:
    """``<repo>/weights/<kind>[_<dataset>]_quick.pth``."""
    from slrnet.profiles import check_dataset

    if kind not in KINDS:
        raise ValueError(f"shipped model: kind must be one of {KINDS}, got {kind!r}")
    suffix = "" if check_dataset(dataset) == "shapes" else f"_{dataset}"
    return repo_root() / "weights" / f"{kind}{suffix}_{PROFILE}.pth"


def record_path(path) -> Path:
    return Path(path).with_name(Path(path).name + ".json")


def read_record(path) -> dict | None:
    try:
        return json.loads(record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def comparable_config(cfg: dict) -> dict:
    """``cfg`` without the machine's paths (log folder, device, data folders): what a record compares."""
    out = copy.deepcopy({k: v for k, v in cfg.items() if k in ("misc", "train", "dataset", "model", "test")})
    for section, key in _MACHINE_KEYS:
        out.get(section, {}).pop(key, None)
    return json.loads(json.dumps(out))                                 # tuples -> lists, as the JSON record holds


def first_stage_config(dataset: str = "shapes", output_dir=None) -> dict:
    """The config notebook 02 trains with its default parameters (quick profile, seed 0)."""
    from slrnet.profiles import dataset_config, training_config

    return training_config(dataset_config(dataset, "quick"), PROFILE, output_dir or tempfile.gettempdir(),
                           overrides={"misc.seed": SEED, "misc.device": "auto", "model.use_cvlr": True})


def segmenter_config(kind: str, dataset: str, labels_root, real_root, num_classes: int, output_dir=None) -> dict:
    """The config notebook 06 trains ``kind`` ("second_stage" | "real_masks") with by default."""
    from slrnet.analysis import two_stage

    return two_stage.segmenter_config(kind, None, PROFILE, output_dir or tempfile.gettempdir(), labels_root,
                                      real_root, EMBEDDED_MASK_DIR, num_classes, seed=SEED, dataset=dataset)


def _starting_weights_sha(cfg: dict) -> str | None:
    from slrnet.data.build import resolve_data_root

    pretrained = cfg["model"].get("pretrained")
    return file_sha256(resolve_data_root(pretrained)) if pretrained else None


def _generator_version(dataset: str) -> int:
    from slrnet.data.build import GENERATORS

    return GENERATORS[dataset].version


def stale_reasons(kind: str, dataset: str = "shapes") -> list[str]:
    """Why the shipped ``kind`` no longer matches today's configs and files ([] when it does; one reason when it
    is missing). A second stage is stale when the first-stage file whose labels it learned from changed."""
    path = shipped_path(kind, dataset)
    record = read_record(path)
    if not path.is_file() or record is None:
        return [f"{path.name} or its record {record_path(path).name} is missing"]
    reasons = []
    if record.get("sha256") != file_sha256(path):
        reasons.append(f"{path.name} is not the file its record describes (SHA-256 differs)")
    if record.get("generator_version") != _generator_version(dataset):
        reasons.append(f"the {dataset} generator is at version {_generator_version(dataset)}, the record says "
                       f"{record.get('generator_version')}")
    if kind == "weakly_supervised":
        today = comparable_config(first_stage_config(dataset))
    else:
        num_classes = first_stage_config(dataset)["model"]["num_classes"]
        today = comparable_config(segmenter_config(kind, dataset, tempfile.gettempdir(), tempfile.gettempdir(),
                                                   num_classes))
        first = shipped_path("weakly_supervised", dataset)
        if kind == "second_stage" and record.get("first_stage_sha256") != (file_sha256(first) if first.is_file()
                                                                            else None):
            reasons.append(f"it learned from the pseudo labels of another {first.name}")
    for key in sorted(_differing_keys(record.get("config") or {}, today)):
        reasons.append(f"config {key} differs from today's")
    if record.get("starting_weights_sha256") != _starting_weights_sha(today):
        reasons.append(f"its starting weights {today['model'].get('pretrained')} changed")
    return reasons


def _differing_keys(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k in set(a) | set(b):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            keys |= _differing_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.add(f"{prefix}{k}")
    return keys


def shipped_model(kind: str, dataset: str = "shapes", profile: str = PROFILE) -> Path | None:
    """The shipped ``kind`` for ``dataset`` when ``profile`` is the quick one and its record still matches; None
    otherwise (a stale file says why, once, on stderr)."""
    from slrnet.profiles import EMBEDDED_DATASETS

    if profile != PROFILE or dataset not in EMBEDDED_DATASETS:
        return None
    path = shipped_path(kind, dataset)
    if not path.is_file():
        return None
    reasons = stale_reasons(kind, dataset)
    if reasons:
        print(f"note: not using {path.name}: {'; '.join(reasons)} (remake it with: make weights)", file=sys.stderr)
        return None
    return path


def shipped_segmenters(stage1_source: str, dataset: str, profile: str) -> dict | None:
    """``{kind: path}`` of the shipped second stages when the first stage is the shipped quick model and both are
    current, so that notebook 06 run alone trains nothing; None: train them there."""
    if stage1_source != "shipped":
        return None
    from slrnet.analysis.two_stage import SEGMENTERS

    paths = {kind: shipped_model(kind, dataset, profile) for kind in SEGMENTERS}
    return paths if all(p is not None for p in paths.values()) else None


def reading_check(model, cfg: dict, dataset: str = "shapes", device="cpu") -> dict:
    """Single-scale mIoU (no flip, no CRF, the config's class filter) of ``model`` on a few images generated for
    the check: what a record stores and the test recomputes, to show that today's code reads the weights as they
    were made."""
    from slrnet.data import build_dataset
    from slrnet.infer import Predictor, TestConfig

    with tempfile.TemporaryDirectory() as tmp:
        val = build_dataset({"name": dataset, "root": str(Path(tmp) / dataset), "generate": READING_CHECK}, "val",
                            train=False)
        test = TestConfig.from_config(cfg, scales=(1.0,), flip=False, use_cls_label=False, apply_crf=False)
        cm = Predictor(model, test, device=device, optimize=False).confusion_matrix(val)
        return {"images": len(val), "miou": float(cm.miou()), "options": dict(READING_CHECK)}


def _git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, check=True).stdout

    try:
        # the files being made are not part of the code that makes them
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)weights")
        return {"commit": git("rev-parse", "HEAD").strip(), "uncommitted_changes": bool(changed.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes": None}


def _ship(kind: str, dataset: str, trainer, seconds: float, command: str, extra: dict) -> Path:
    """Write the trained weights of ``trainer`` (no optimiser state) to the shipped file and its record."""
    from slrnet.checkpoint import save_checkpoint
    from slrnet.utils import atomic_write_bytes

    path = shipped_path(kind, dataset)
    cfg = trainer.cfg
    save_checkpoint(path, {"state_dict": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
                           "config": {k: cfg[k] for k in ("misc", "train", "dataset", "model", "test")},
                           "learning_check": trainer.learning_check, "history": trainer.history,
                           "epoch": cfg["train"]["num_epochs"] - 1, "global_step": trainer.global_step})
    record = {"kind": kind, "dataset": dataset, "profile": PROFILE, "command": command, "code": _git_commit(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "seconds": round(seconds, 1),
              "sha256": file_sha256(path), "starting_weights_sha256": _starting_weights_sha(cfg),
              "generator_version": _generator_version(dataset), "config": comparable_config(cfg),
              "global_step": trainer.global_step, "val_miou": trainer.history[-1].get("val_miou"),
              "learned": (trainer.learning_check or {}).get("learned"),
              "reading_check": reading_check(trainer.model.eval(), cfg, dataset), **extra}
    atomic_write_bytes(record_path(path), (json.dumps(record, indent=1) + "\n").encode())
    return path


def make_shipped_models(dataset: str = "shapes", kinds=KINDS, command: str = "") -> list[Path]:
    """Train ``kinds`` as notebooks 02 and 06 do with their default parameters and write them to ``weights/``.
    A second stage needs the shipped first stage (made first when it is among ``kinds``)."""
    from slrnet.analysis import two_stage
    from slrnet.data import build_dataset
    from slrnet.export import export_pseudo_labels
    from slrnet.infer import TestConfig
    from slrnet.models.loading import load_trained_model
    from slrnet.train import Trainer

    made = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "weakly_supervised" in kinds:
            trainer = Trainer.build(first_stage_config(dataset, tmp), tmp / "weakly_supervised")
            start = time.time()
            trainer.fit()
            made.append(_ship("weakly_supervised", dataset, trainer, time.time() - start, command, {}))
        segmenters = [k for k in kinds if k in two_stage.SEGMENTERS]
        if not segmenters:
            return made
        first = shipped_path("weakly_supervised", dataset)
        model, cfg1 = load_trained_model(first)
        train_set = build_dataset(cfg1["dataset"], "train", train=False)     # full images, as notebook 06 labels them
        labels = tmp / "pseudo_labels"
        if "second_stage" in segmenters:
            export_pseudo_labels(model, train_set, labels, TestConfig.from_config(cfg1, use_cls_label=True,
                                                                                  apply_crf=True))
        for kind in segmenters:
            cfg = segmenter_config(kind, dataset, labels, train_set.root, model.num_classes, tmp)
            trainer, seconds = two_stage.train_segmenter(cfg, tmp / kind)
            extra = {"first_stage_sha256": file_sha256(first)} if kind == "second_stage" else {}
            made.append(_ship(kind, dataset, trainer, seconds, command, extra))
    return made


def main(argv=None) -> int:
    from slrnet.profiles import EMBEDDED_DATASETS

    parser = argparse.ArgumentParser(prog="python -m slrnet.analysis.shipped", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shapes", choices=EMBEDDED_DATASETS)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m slrnet.analysis.shipped", *given])
    for path in make_shipped_models(args.dataset, args.kinds, command):
        record = read_record(path)
        print(f"{path.relative_to(repo_root())}: val mIoU {record['val_miou']:.3f}, learned {record['learned']}, "
              f"{path.stat().st_size / 1e6:.1f} MB, {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
