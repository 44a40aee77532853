"""The whole official network's seeded weights and its golden outputs (``fixtures/net_forward.npz``).

The fixture README (``shared/reference/README.md`` section 11) defines every weight by a formula from a seed,
so the official WideResNet-38 SLRNet (138.7 M parameters) is rebuilt here without storing a weight file:

    >>> ref = load_reference()
    >>> state = official_state_dict(ref)          # official keys (aliases included) -> float64 tensors
    >>> save_official_checkpoint(state, path)     # {'state_dict', 'epoch', 'optimizer'}, as their trainer writes

The tests load that file through ``slrnet.models.loading.load_trained_model``, the loader behind ``infer --checkpoint``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "voc_wss_resnet38.yaml"   # the released network's


def model_config() -> dict:
    """The ``model`` section of the released VOC network's config."""
    from slrnet.config import load_config

    return load_config(CONFIG)["model"]
NET_FORWARD = FIXTURES / "net_forward.npz"


def load_reference(path: Path = NET_FORWARD) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def seeded_tensor(spec: dict) -> torch.Tensor:
    """One weight by the README's formula: the draw depends on the key's ending and rank."""
    shape, name = tuple(spec["shape"]), spec["name"]
    g = torch.Generator().manual_seed(int(spec["seed"]))
    if name.endswith("running_var"):
        value = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
    elif name.endswith("running_mean"):
        value = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    elif len(shape) >= 2:                                   # conv / linear weight
        fan_in = math.prod(shape[1:])
        value = spec["gain"] * torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
    elif name.endswith("weight"):                           # BatchNorm scale
        value = 1 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    else:                                                   # bias
        value = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    return value + spec["offset"]


def official_state_dict(ref: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every randomised tensor under its official key and all its aliases (the same tensor object)."""
    state = {}
    for spec in json.loads(str(ref["weights_spec_json"])):
        value = seeded_tensor(spec)
        for key in [spec["name"], *spec["aliases"]]:
            state[prefix + key] = value
    return state


def complete_with_model_buffers(state: dict, model: torch.nn.Module, prefix: str = "") -> dict:
    """Add what the spec leaves at its built value (``num_batches_tracked``, the fixed PAMR kernels)."""
    out = dict(state)
    for key, value in model.state_dict().items():
        out.setdefault(prefix + key, value.clone())
    return out


def save_official_checkpoint(state: dict, path: Path) -> Path:
    """The official trainer's checkpoint layout: ``{'state_dict', 'epoch', 'optimizer'}``."""
    torch.save({"state_dict": state, "epoch": 29, "optimizer": {}}, path)
    return path


def subsample_grad(grad: torch.Tensor) -> np.ndarray:
    """The fixture's gradient sampling: every k-th element of tensors over 512 elements, 512 at most."""
    flat = grad.detach().flatten()
    if flat.numel() > 512:
        flat = flat[:: flat.numel() // 512][:512]
    return flat.numpy()
