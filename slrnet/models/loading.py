"""The one loader of trained models: a checkpoint (and its config) -> the network in eval mode.

    >>> from slrnet.models.loading import load_trained_model
    >>> model, cfg = load_trained_model("runs/demo/checkpoints/last.pth")          # the run's config.yaml
    >>> model, cfg = load_trained_model("model.pth", config="configs/voc_wss_resnet38.yaml", prepare=True)

Used by ``python -m slrnet infer | export``, the notebooks and the analyses alike. The config comes from, in
order: ``config`` (a YAML path or a config dict), the checkpoint's own ``config`` entry (as ``Trainer`` and
notebook 02 save it), or the ``config.yaml`` of the run folder that holds ``<run>/checkpoints/<file>.pth``.
Weights load strictly, with ``weights_only`` (``slrnet.checkpoint.load_checkpoint``); the backbone's
``model.pretrained`` file is neither needed nor read.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from slrnet.checkpoint import load_checkpoint
from slrnet.config import load_config
from slrnet.models.inference import prepare_for_inference
from slrnet.models.slrnet import build_trained_model


# what a checkpoint's own config must share with a config given beside it: another value builds another network
# (the semi variant without class scores under the weak config), or the same network with another test-time rule
IDENTITY_KEYS = (("model", "name"), ("model", "num_classes"), ("model", "bg_pow"), ("model", "use_cvlr"),
                 ("model", "reconstruction"))


def _config_for(path: Path, ckpt, config) -> dict:
    if config is not None:
        given = config if isinstance(config, dict) else load_config(config)
        _check_against_own(path, ckpt, given)
        return given
    cfg = ckpt.get("config") if isinstance(ckpt, dict) else None
    run_config = path.resolve().parent.parent / "config.yaml"    # <run>/checkpoints/x.pth -> <run>/config.yaml
    if cfg is None and path.resolve().parent.name == "checkpoints" and run_config.is_file():
        cfg = load_config(run_config)
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"checkpoint {path}: no config given, none inside (a 'config' entry with a 'model' section, "
                         f"as slrnet.train.Trainer saves it) and no run folder's {run_config}; pass the YAML config "
                         f"the model was trained with (--config)")
    return cfg


def _check_against_own(path: Path, ckpt, given: dict) -> None:
    """A checkpoint saved with its config (``Trainer``) refuses a given config of another variant or class count."""
    own = ckpt.get("config") if isinstance(ckpt, dict) else None
    if not isinstance(own, dict) or "model" not in own:
        return                                        # the authors' files: the given config is all there is
    for section, key in IDENTITY_KEYS:
        mine, theirs = own[section].get(key), given.get(section, {}).get(key)
        if mine is not None and theirs is not None and mine != theirs:
            raise ValueError(f"checkpoint {path} was trained with {section}.{key} = {mine!r}, the config given says "
                             f"{theirs!r}; pass the config it was trained with, or none (it holds its own)")


def load_trained_model(checkpoint: str | os.PathLike, config: str | os.PathLike | dict | None = None,
                       device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                       prepare: bool = False):
    """(model in eval mode on ``device``, config dict).

    ``checkpoint``: ``{'state_dict': ...}`` (plus ``config``), ``{'model': ...}`` or a bare state_dict.
    ``dtype`` casts the model before the weights are copied in (float64 keeps a float64 checkpoint exact);
    ``prepare`` readies it for inference only, in place (:func:`slrnet.models.inference.prepare_for_inference`:
    BatchNorm folded, channels-last, no training afterwards).
    """
    from slrnet.utils import resolve_device

    path = Path(checkpoint).expanduser()
    ckpt = load_checkpoint(path, map_location="cpu")
    if isinstance(ckpt, dict) and "config" in ckpt and not {"state_dict", "model"} & set(ckpt):
        raise ValueError(f"checkpoint {path}: holds a 'config' but no weights; expected 'state_dict' (as "
                         f"slrnet.train.Trainer saves it), 'model', or a bare state_dict")
    cfg = _config_for(path, ckpt, config)
    model = build_trained_model(cfg["model"], ckpt, source=str(path), dtype=dtype)
    model.to(resolve_device(device)).eval()
    if prepare:
        prepare_for_inference(model, inplace=True)
    return model, cfg
