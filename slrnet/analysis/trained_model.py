"""The model an analysis works on: a given checkpoint, the suite's weakly supervised model, or a short run.

Notebooks 04 (low-rank factors) and 05 (evaluation) look at a trained SLRNet. The notebook that trains the
weakly supervised model (02) publishes it with :func:`publish_model` under the output root, in
``<output root>/models/weakly_supervised.pth`` (``weakly_supervised_photos.pth`` for the photos dataset: one
published model per embedded dataset, :func:`published_name`); the analyses read it from there
(:func:`published_model`). A ``checkpoint`` parameter names any other file. When there is none, the quick profile
uses the model that ships in ``weights/`` (``slrnet.analysis.shipped``: the same training as notebook 02's), so notebooks
04-06 open in seconds; otherwise they train the profile's short run of ``configs/<dataset>_quick.yaml`` first
(``short_run`` in ``configs/profiles.yaml``), so every notebook also runs alone.

    >>> from slrnet.analysis.trained_model import evaluation_set, load_or_train
    >>> model, cfg, info = load_or_train(None, "outputs/05_evaluate", profile="quick")
    >>> info["source"], info["checkpoint"]         # "checkpoint" / "trained here", the file the weights are in
    >>> val = evaluation_set(cfg, split="val", num_classes=model.num_classes)   # full images with masks

Checkpoints are read by the one loader, ``slrnet.models.loading.load_trained_model``.
"""
from __future__ import annotations

import time
from pathlib import Path

from slrnet.checkpoint import load_checkpoint, save_checkpoint
from slrnet.models.loading import load_trained_model
from slrnet.profiles import check_dataset, check_profile, dataset_config, training_config

WEAKLY_SUPERVISED = "weakly_supervised"


def published_name(dataset: str = "shapes") -> str:
    """The published weakly supervised model of an embedded dataset: "weakly_supervised" (shapes),
    "weakly_supervised_photos", ..."""
    return WEAKLY_SUPERVISED if check_dataset(dataset) == "shapes" else f"{WEAKLY_SUPERVISED}_{dataset}"


def published_model(output_dir, name: str = WEAKLY_SUPERVISED) -> Path:
    """Where the model ``name`` is published for the other notebooks of one output root:
    ``<output_dir>/../models/<name>.pth`` (``output_dir`` is a notebook's folder under that root)."""
    return Path(output_dir).resolve().parent / "models" / f"{name}.pth"


def publish_model(state: dict, output_dir, name: str = WEAKLY_SUPERVISED) -> Path:
    """Save a checkpoint (``{'state_dict', 'config', ...}``, as ``Trainer`` writes it) as the published ``name``."""
    if not isinstance(state, dict) or "state_dict" not in state or "config" not in state:
        raise ValueError("publish_model: expected a checkpoint dict with 'state_dict' and 'config'")
    path = published_model(output_dir, name)
    save_checkpoint(path, state)
    return path


def train_small_model(output_dir, profile: str = "quick", seed: int = 0, device="auto", config=None,
                      data_root=None, dataset: str = "shapes"):
    """Train ``config`` (see ``slrnet.profiles.resolve_config_path``; None: ``configs/<dataset>_quick.yaml``)
    with ``profile``'s short run into ``<output_dir>/train_run``; ``data_root``: any VOC-layout folder instead
    of the config's dataset.

    Returns (model in eval mode, config, info {"source": "trained here", "checkpoint", "train_seconds",
    "learning_check", "history"}).
    """
    from slrnet.train import Trainer

    check_profile(profile)
    out = Path(output_dir).resolve()
    config = dataset_config(dataset) if config is None else config
    cfg = training_config(config, profile, out, data_root=data_root, short_run=True,
                          overrides={"misc.seed": int(seed), "misc.device": str(device)})
    start = time.perf_counter()
    trainer = Trainer.build(cfg, run_dir=out / "train_run", overwrite=True)   # this notebook's own run, made again
    trainer.fit()
    seconds = time.perf_counter() - start
    return trainer.model.eval(), cfg, {"source": "trained here", "checkpoint": str(trainer.ckpt_dir / "last.pth"),
                                       "train_seconds": round(seconds, 2), "learning_check": trainer.learning_check,
                                       "history": trainer.history}


def load_or_train(checkpoint, output_dir, profile: str = "quick", seed: int = 0, device="auto", config=None,
                  data_root=None, dataset: str = "shapes"):
    """The notebook's model: ``checkpoint`` if given (it must exist); else the published weakly supervised
    model of ``dataset`` in ``output_dir``'s root if present; else, in the quick profile with the embedded dataset
    and its config, the shipped quick model (``slrnet.analysis.shipped``); else ``train_small_model(output_dir, profile,
    seed, device, config, data_root, dataset)``.

    Returns (model in eval mode, config, info) with info {"source": "checkpoint" / "shipped" / "trained here",
    "checkpoint": the weights' file, "train_seconds", "learning_check": the trainer's verdict on the run or None,
    "history": its per-epoch records (losses, factor diagnostics) or None}. ``config`` also reads a checkpoint saved
    without one (the authors' released files).
    When the run that made the model did not learn (``slrnet.learning_check``), its paragraph is printed first:
    what follows analyses an untrained network.
    """
    check_profile(profile)
    if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
        raise FileNotFoundError(f"checkpoint: {checkpoint} does not exist (None uses the published weakly supervised "
                                f"model, {published_model(output_dir, published_name(dataset))}, or trains one)")
    path = (Path(checkpoint).expanduser() if checkpoint is not None
            else published_model(output_dir, published_name(dataset)))
    source = "checkpoint"
    if not path.is_file() and checkpoint is None and config is None and data_root is None:
        from slrnet.analysis.shipped import shipped_model

        shipped = shipped_model("weakly_supervised", dataset, profile)
        path, source = (shipped, "shipped") if shipped is not None else (path, source)
    if path.is_file():
        model, cfg = load_trained_model(path, config, device=device)      # config: for a file without one inside
        saved = load_checkpoint(path, map_location="cpu")
        saved = saved if isinstance(saved, dict) else {}
        model_info = {"source": source, "checkpoint": str(path), "train_seconds": 0.0,
                      "learning_check": saved.get("learning_check"), "history": saved.get("history")}
    else:
        model, cfg, model_info = train_small_model(output_dir, profile, seed, device, config=config,
                                                   data_root=data_root, dataset=dataset)
    verdict = model_info["learning_check"]
    if verdict is not None and not verdict["learned"]:
        print(f"warning: {verdict['message']}", flush=True)
    return model, cfg, model_info


def untrained_model(cfg: dict, device="cpu"):
    """The network ``cfg`` trains, as training starts: the pretrained backbone the config names, new layers drawn
    with ``misc.seed`` (as ``Trainer.build`` seeds them), in eval mode: "before training" in notebook 04."""
    from slrnet.models import build_model
    from slrnet.pretrain import resolve_pretrained
    from slrnet.utils import seed_everything

    seed_everything(int(cfg["misc"]["seed"]))
    model = build_model({**cfg["model"], "pretrained": resolve_pretrained(cfg["model"])})
    return model.to(device).eval()


def evaluation_set(cfg: dict, data_root=None, split: str = "val", num_classes: int | None = None):
    """Full-size images of ``split`` from the config's dataset, or of any VOC-layout ``data_root``; the
    dataset must have the model's ``num_classes`` when given."""
    from slrnet.data import VOCSegmentation, build_dataset

    if data_root is not None:
        dataset = VOCSegmentation(Path(data_root).expanduser(), split, mask_dir=None)
    else:
        dataset = build_dataset(cfg["dataset"], split, train=False)
    if num_classes is not None and dataset.num_classes != num_classes:
        raise ValueError(f"data_root: {dataset.root} has {dataset.num_classes} classes but the model predicts "
                         f"{num_classes}; use a dataset with the model's classes")
    return dataset
