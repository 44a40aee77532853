"""The optimiser and learning-rate schedule of METHOD.md section 3 (the authors' ``tools/train_voc_wss.py``).

SGD with Nesterov momentum over four parameter groups with LR multipliers (backbone weights, backbone biases, new
weights, new biases; no weight decay on biases); the LR is constant during the pretraining epochs and follows a
cosine over the post-pretraining steps. The second stage uses mmsegmentation's poly schedule.

    >>> optimizer = build_optimizer(model, cfg)
    >>> for g in optimizer.param_groups: g["lr"] = g["initial_lr"] * lr_factor(epoch, step, steps_per_epoch, cfg)
"""
from __future__ import annotations

import math

import torch


def lr_multipliers(cfg: dict) -> list[float]:
    """``train.lr_multipliers``, or the recipe's: x1/x2/x10/x20 for WideResNet-38, x1/x1/x10/x10 otherwise."""
    if cfg["train"]["lr_multipliers"] is not None:
        return [float(m) for m in cfg["train"]["lr_multipliers"]]
    return [1.0, 2.0, 10.0, 20.0] if cfg["model"]["backbone"] in ("resnet38", "wideresnet38") else [1.0, 1.0, 10.0, 10.0]


def build_optimizer(model, cfg: dict) -> torch.optim.SGD:
    """SGD Nesterov; groups [bb weights, bb biases, new weights, new biases]; no decay on biases."""
    t = cfg["train"]
    mult = lr_multipliers(cfg)
    groups = []
    for params, m, decay in zip(model.parameter_groups(), mult, (True, False, True, False)):
        if params:
            groups.append({"params": params, "lr": t["lr"] * m, "initial_lr": t["lr"] * m,
                           "weight_decay": t["weight_decay"] if decay else 0.0})
    return torch.optim.SGD(groups, lr=t["lr"], momentum=t["momentum"], nesterov=True,
                           weight_decay=t["weight_decay"])


def lr_factor(epoch: int, step_in_epoch: int, steps_per_epoch: int, cfg: dict) -> float:
    """``train.lr_policy``: "cosine" (SLRNet's) is constant during pretraining, then a cosine over the
    post-pretraining steps (as CosineAnnealingLR there); "poly" (mmsegmentation's, the second stage's) is
    (1 - step / steps)^0.9 over every step."""
    t = cfg["train"]
    if t["lr_policy"] == "poly":
        total = max(1, t["num_epochs"] * steps_per_epoch)
        return (1.0 - min(epoch * steps_per_epoch + step_in_epoch, total) / total) ** 0.9
    if epoch <= t["pretrain_epochs"]:
        return 1.0
    total = max(1, (t["num_epochs"] - t["pretrain_epochs"]) * steps_per_epoch)
    done = (epoch - t["pretrain_epochs"] - 1) * steps_per_epoch + step_in_epoch
    return 0.5 * (1.0 + math.cos(math.pi * min(done, total) / total))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor


def apply_config_schedule(optimizer: torch.optim.Optimizer, model, cfg: dict, verbose: bool = True) -> None:
    """After loading a saved optimiser state: learning rates, momentum and weight decay come from the config, so a
    resumed run with a changed ``train.lr`` trains at the new rate (the saved state would bring the old one)."""
    fresh = build_optimizer(model, cfg)
    if len(fresh.param_groups) != len(optimizer.param_groups):
        raise ValueError("resume: the checkpoint's optimiser has another parameter-group layout than this model")
    for old, new in zip(optimizer.param_groups, fresh.param_groups):
        if verbose and abs(old["initial_lr"] - new["initial_lr"]) > 1e-12 * max(1.0, new["initial_lr"]):
            print(f"resume: learning rate {old['initial_lr']:g} -> {new['initial_lr']:g} (from the config)", flush=True)
        for key in ("initial_lr", "lr", "momentum", "weight_decay", "nesterov"):
            old[key] = new[key]
