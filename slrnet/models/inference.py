"""Test-time preparation of a trained network: BatchNorm folded into the convolutions, channels-last layout.

What the field does before deploying a CNN (e.g. ``torch.ao.quantization.fuse_modules``, TensorRT, oneDNN
graph): a frozen BatchNorm is an affine map per channel, so when it reads a convolution's output directly,

    BN(conv(x)) = gamma * (W * x + b - mu) / sqrt(var + eps) + beta = W' * x + b'
    W' = W * s[:, None, None, None],   b' = (b - mu) * s + beta,   s = gamma / sqrt(var + eps),

and the BN disappears (one pass over the activation less per pair). BNs that do not follow a convolution
(WideResNet-38's *pre-activation* BNs, which read a residual sum that also feeds the shortcut) stay as they
are: in eval mode they are already one fused affine kernel.

The pairs are found by running the network once on a small probe and recording which BatchNorm received the
very tensor a Conv2d had just returned; the prepared model is then checked against the original on that
probe, so a pair whose conv output also feeds something else (folding would change that other consumer)
cannot slip through: preparation raises instead.

``memory_format="channels_last"`` stores the 4-D weights NHWC; :func:`to_model_layout` puts inputs in the
same layout. On CPU, oneDNN then skips the NCHW <-> blocked reorders around each convolution
(``benchmarks/infer.py`` measures each step on its own).

    >>> from slrnet.models.inference import prepare_for_inference
    >>> fast = prepare_for_inference(model)            # a copy; model itself is untouched
    >>> fast.predict(to_model_layout(fast, images))    # same outputs within float rounding (tests)
    >>> fast.train()                                   # raises: its BatchNorms are gone
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from slrnet.errors import UserError

PREPARED_ATTR = "prepared_for_inference"


class InferenceOnlyModel(UserError, RuntimeError):
    """A model prepared for inference (BatchNorm folded) was put in training mode."""


def fold_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold eval-mode ``bn`` (reading ``conv``'s output) into ``conv``'s weight and bias, in place.

    Computed in float64 and cast back, so the folded weights carry no more rounding than one float32 step.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it keeps no running statistics")
    w = conv.weight.detach()
    scale = (bn.running_var.double() + bn.eps).rsqrt()                      # (C_out,)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    if conv.bias is not None:
        shift = shift + conv.bias.detach().double() * scale
    conv.weight = nn.Parameter((w.double() * scale.view(-1, 1, 1, 1)).to(w.dtype), requires_grad=False)
    conv.bias = nn.Parameter(shift.to(w.dtype), requires_grad=False)


def find_conv_bn_pairs(model: nn.Module, probe_call) -> list[tuple[str, str]]:
    """(conv name, BN name) where the BN's input was the tensor the conv had just returned, in one
    ``probe_call()``. Each conv is paired at most once (a conv called twice is paired only if every call
    fed the same BN)."""
    names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
    last_conv_out: dict[int, tuple[torch.Tensor, nn.Module]] = {}   # the tensor is kept: ids get reused
    seen: dict[nn.Module, set] = {}
    handles = []

    def after_conv(mod, inputs, output):
        last_conv_out[id(output)] = (output, mod)
        seen.setdefault(mod, set())

    def conv_of(x):
        entry = last_conv_out.get(id(x))
        return entry[1] if entry is not None and entry[0] is x else None

    def before_bn(mod, inputs):
        conv = conv_of(inputs[0])
        if conv is not None:
            seen[conv].add(mod)

    def before_any(mod, inputs):                     # another module reading a conv output: no fold
        for x in inputs:
            conv = conv_of(x)
            if conv is not None:
                seen[conv].add(None)

    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(after_conv))
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            handles.append(mod.register_forward_pre_hook(before_bn))
        elif not list(mod.children()):
            handles.append(mod.register_forward_pre_hook(before_any))
    try:
        with torch.no_grad():
            probe_call()
    finally:
        for h in handles:
            h.remove()
    return [(names[conv], names[next(iter(bns))]) for conv, bns in seen.items()
            if len(bns) == 1 and None not in bns]


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _refuse_training(self, mode: bool = True):
    if mode:
        raise InferenceOnlyModel("this model was prepared for inference (BatchNorm folded into the convolutions) "
                                 "and cannot be trained; train the original model instead")
    return nn.Module.train(self, False)


def prepare_for_inference(model: nn.Module, probe_size: int = 64, fold_bn: bool = True,
                          memory_format: torch.memory_format | None = torch.channels_last,
                          inplace: bool = False, atol: float = 1e-4) -> nn.Module:
    """An eval-only copy of ``model`` (``model`` itself with ``inplace=True``) with BN folded, NHWC weights.

    ``model`` must have ``predict(images)``; the probe is a (1, 3, probe_size, probe_size) input on the
    model's device and dtype. Raises ``RuntimeError`` if the prepared model's masks on the probe differ from
    the original's by more than ``atol`` (float32 rounding is ~1e-6).
    """
    model.eval()
    param = next(model.parameters(), None)
    probe = torch.randn(1, 3, probe_size, probe_size, generator=torch.Generator().manual_seed(0))
    if param is not None:
        probe = probe.to(device=param.device, dtype=param.dtype)
    with torch.no_grad():
        expected = model.predict(probe)["masks"]
    prepared = model if inplace else copy.deepcopy(model)
    folded = []
    if fold_bn:
        for conv_name, bn_name in find_conv_bn_pairs(prepared, lambda: prepared.predict(probe)):
            fold_conv_bn(prepared.get_submodule(conv_name), prepared.get_submodule(bn_name))
            _set_submodule(prepared, bn_name, nn.Identity())
            folded.append(bn_name)
    if memory_format is not None:
        prepared.to(memory_format=memory_format)
    for p in prepared.parameters():
        p.requires_grad_(False)
    setattr(prepared, PREPARED_ATTR, {"folded_bn": len(folded), "memory_format": str(memory_format)})
    prepared.train = _refuse_training.__get__(prepared)                    # eval() still works
    with torch.no_grad():
        got = prepared.predict(to_model_layout(prepared, probe))["masks"]
    err = (got.float() - expected.float()).abs().max().item()
    if not err <= atol:
        raise RuntimeError(f"prepare_for_inference: the prepared model differs from the original by {err:.2e} "
                           f"(> {atol:.0e}) on a probe input; a folded conv output feeds more than its BatchNorm")
    return prepared


def is_prepared(model: nn.Module) -> bool:
    return getattr(model, PREPARED_ATTR, None) is not None


def to_model_layout(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory format the prepared ``model`` was given (unchanged for an unprepared model)."""
    info = getattr(model, PREPARED_ATTR, None)
    if x.dim() == 4 and info is not None and info["memory_format"] == str(torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x
