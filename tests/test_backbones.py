"""Backbones: official key layout, shapes / strides, freezing policy, ImageNet weight loading.

Full-size networks are built at most once each with real storage (WideResNet-38: one 105 M
parameter model shared by the tests of this module; ResNet-101: one); key and shape checks
build on the ``meta`` device, which allocates nothing.
"""
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from slrnet.checkpoint import StateDictMismatchError, alias_groups
from slrnet.models.backbones import Backbone, ResNet, ResNet38, TinyBackbone, build_backbone, resnet101

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def official():
    return json.loads((FIXTURES / "resnet38d_keys.json").read_text())


@pytest.fixture(scope="module")
def wrn38():
    torch.manual_seed(0)
    return ResNet38()


def _batchnorms(net):
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


# --------------------------------------------------------------------------- WideResNet-38
def test_resnet38_state_dict_matches_official_layout(official):
    with torch.device("meta"):
        net = build_backbone("wideresnet38")
    assert isinstance(net, ResNet38)
    sd = net.state_dict()
    rows = official["backbone_state_dict"]
    assert len(sd) == len(rows) == 266
    assert list(sd) == [r["key"] for r in rows]                    # same keys, same order
    for r in rows:
        assert list(sd[r["key"]].shape) == r["shape"], r["key"]
        assert str(sd[r["key"]].dtype) == "torch." + r["dtype"], r["key"]
    # Aliases: the same tensor under both names, exactly the official pairs.
    groups = alias_groups(net)
    official_aliases = {r["key"]: r["alias_of"] for r in rows if "alias_of" in r}
    assert len(official_aliases) == 38
    for key, target in official_aliases.items():
        assert target in groups[key], key
    assert sum(len(g) > 1 for g in groups.values()) == 2 * 38
    assert sum(p.numel() for p in net.parameters()) == official["num_params_backbone"]


def test_resnet38_freezing_matches_official_trainable_flags(official):
    with torch.device("meta"):
        net = ResNet38()
    net.train()
    rows = [r for r in official["net_state_dict"] if r["key"].startswith("backbone.") and r["kind"] == "param"]
    want_frozen = {r["key"][len("backbone."):] for r in rows if not r["trainable"] and "alias_of" not in r}
    got_frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    assert got_frozen == want_frozen and len(got_frozen) == len(net.frozen_parameters())
    assert all(not m.training for m in _batchnorms(net))            # BN statistics frozen in train mode
    assert net.b6.dropout_2b1.training and net.b7.dropout_2b2.training   # dropout still active
    groups = net.param_groups()
    assert groups["biases"] == []                                   # every bias belongs to a frozen BN
    assert len(groups["weights"]) == len(list(net.parameters())) - len(got_frozen)
    # The decoder consumes conv3 / conv6: their widths are the official fc8_skip / ASPP inputs.
    shapes = {r["key"]: r["shape"] for r in official["net_state_dict"]}
    assert shapes["fc8_skip.0.weight"][1] == net.shallow_channels == 256
    assert shapes["aspp.aspp1.atrous_conv.weight"][1] == net.deep_channels == 4096


def test_resnet38_not_frozen_option():
    with torch.device("meta"):
        net = ResNet38(frozen=False)
    net.train()
    assert net.frozen_parameters() == [] and all(p.requires_grad for p in net.parameters())
    assert all(m.training for m in _batchnorms(net))


def test_resnet38_forward_shapes_and_conv3(wrn38):
    captured = {}
    hook = wrn38.b3_2.register_forward_hook(lambda m, i, o: captured.setdefault("b3", o))
    wrn38.eval()
    with torch.no_grad():
        out = wrn38(torch.randn(1, 3, 64, 64))
    hook.remove()
    assert out["shallow"].shape == (1, 256, 16, 16)                 # stride 4
    assert out["deep"].shape == (1, 4096, 8, 8)                     # stride 8
    # The authors' conv3 is the raw residual sum of b3_2: no BatchNorm, no ReLU. It takes negative
    # values, which b4's pre-activation ReLU(BN(.)) never would.
    assert torch.equal(out["shallow"], captured["b3"])
    assert (out["shallow"] < 0).any()
    assert (out["deep"] >= 0).all()                                 # ReLU(bn7(.))


def test_resnet38_loads_imagenet_file(wrn38, tmp_path):
    # An MXNet-converted-style file: the backbone keys without aliases, without the BN counters
    # (old PyTorch), plus the 1000-way classifier. Values: the model's own, perturbed.
    g = torch.Generator().manual_seed(1)
    aliases = {k for k in wrn38.state_dict() if k.startswith("fixed_layers.")}
    file_sd = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in wrn38.state_dict().items()
               if k not in aliases and not k.endswith("num_batches_tracked")}
    file_sd["linear1000.weight"] = torch.randn(1000, 4096, generator=g)
    file_sd["linear1000.bias"] = torch.zeros(1000)
    path = tmp_path / "ilsvrc-cls_rna-a1_cls1000_ep-0001.pth"
    torch.save(file_sd, path)

    report = wrn38.load_imagenet(path)
    assert report.ok
    assert sorted(report.ignored) == ["linear1000.bias", "linear1000.weight"]
    assert len(report.matched) == len(file_sd) - 2
    assert set(report.via_alias) == {k for k in aliases if not k.endswith("num_batches_tracked")}
    loaded = wrn38.state_dict()
    for k, v in file_sd.items():
        if k in loaded:
            assert torch.equal(loaded[k], v), k
    assert torch.equal(wrn38.fixed_layers[0].weight, file_sd["conv1a.weight"])
    assert all(not p.requires_grad for p in wrn38.fixed_layers.parameters())   # still frozen


def test_resnet38_mismatched_file_is_named(tmp_path):
    with torch.device("meta"):
        net = ResNet38()
    path = tmp_path / "wrong.pth"
    torch.save({"conv1a.weight": torch.zeros(64, 3, 5, 5), "b2.conv_branch2a.weight": torch.zeros(128, 64, 3, 3),
                "b9.conv.weight": torch.zeros(1)}, path)
    with pytest.raises(StateDictMismatchError) as info:
        net.load_pretrained(path)
    msg = str(info.value)
    assert "wrong.pth" in msg and "conv1a.weight: file (64, 3, 5, 5) vs model (64, 3, 3, 3)" in msg
    assert "unexpected (1): b9.conv.weight" in msg
    n_missing = 266 - 38 - 37 - 2                # canonical keys - BN counters - the two keys in the file
    assert f"missing ({n_missing}):" in msg and len(info.value.report.missing) == n_missing


# ------------------------------------------------------------------------------ ResNet-101
def torchvision_resnet_keys(blocks=(3, 4, 23, 3)):
    """(key, shape) of torchvision's ``resnet101`` state_dict without ``fc``, written out from
    the architecture of He et al. (Table 1) in torchvision's naming (``torchvision/models/resnet.py``:
    ``conv1, bn1, layerI.J.{conv1..3, bn1..3, downsample.0/1}``)."""
    def bn(prefix, c):
        return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
                (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]

    keys = [("conv1.weight", (64, 3, 7, 7))] + bn("bn1", 64)
    in_c = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for j in range(n):
            p = f"layer{stage}.{j}"
            keys += [(f"{p}.conv1.weight", (planes, in_c, 1, 1))] + bn(f"{p}.bn1", planes)
            keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + bn(f"{p}.bn2", planes)
            keys += [(f"{p}.conv3.weight", (4 * planes, planes, 1, 1))] + bn(f"{p}.bn3", 4 * planes)
            if j == 0:
                keys += [(f"{p}.downsample.0.weight", (4 * planes, in_c, 1, 1))] + bn(f"{p}.downsample.1", 4 * planes)
            in_c = 4 * planes
    return keys


def test_resnet101_key_layout():
    with torch.device("meta"):
        net = build_backbone("resnet101", output_stride=16)
    want = torchvision_resnet_keys()
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == want
    # torchvision documents 44,549,160 parameters for resnet101, of which fc is 2048*1000 + 1000.
    assert sum(p.numel() for p in net.parameters()) == 44_549_160 - (2048 * 1000 + 1000)


@pytest.mark.parametrize("output_stride, dil3, dil4", [(16, [1, 1], [1, 2]), (8, [1, 2], [2, 4])])
def test_resnet_output_stride_by_dilation(output_stride, dil3, dil4):
    torch.manual_seed(0)
    net = ResNet(blocks=(1, 1, 2, 2), output_stride=output_stride).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out["shallow"].shape == (2, 256, 16, 16)
    assert out["deep"].shape == (2, 2048, 64 // output_stride, 64 // output_stride)
    assert [b.conv2.dilation[0] for b in net.layer3] == dil3 and [b.conv2.dilation[0] for b in net.layer4] == dil4
    assert all(b.conv2.padding == b.conv2.dilation for b in list(net.layer3) + list(net.layer4))
    with pytest.raises(ValueError, match="output_stride"):
        ResNet(output_stride=32)


def test_resnet_frozen_bn_stays_frozen_in_train_mode():
    torch.manual_seed(0)
    net = ResNet(blocks=(1, 1, 1, 1), output_stride=16)
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.train()
    out = net(torch.randn(2, 3, 32, 32))
    (out["deep"].mean() + out["shallow"].mean()).backward()
    for k, v in net.state_dict().items():
        if "running" in k:
            assert torch.equal(v, stats[k]), k                     # batch statistics never used
    for name, p in net.named_parameters():
        frozen = name.startswith(("conv1", "bn1", "layer1")) or ".bn" in name or "downsample.1" in name
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name
    assert net.param_groups()["biases"] == [] and len(net.param_groups()["weights"]) == 3 * 3 + 3


def test_resnet101_loads_imagenet_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    file_sd = {}
    for key, shape in torchvision_resnet_keys():
        if key.endswith("num_batches_tracked"):
            file_sd[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            file_sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            file_sd[key] = torch.randn(shape, generator=g)
    file_sd["fc.weight"], file_sd["fc.bias"] = torch.randn(1000, 2048, generator=g), torch.randn(1000, generator=g)
    path = tmp_path / "resnet101-63fe2227.pth"
    torch.save(file_sd, path)
    net = resnet101(output_stride=8)
    report = net.load_pretrained(path)
    assert report.ok and sorted(report.ignored) == ["fc.bias", "fc.weight"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, file_sd[k]), k
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 3, 64, 64))
    assert out["shallow"].shape == (1, 256, 16, 16) and out["deep"].shape == (1, 2048, 8, 8)


# ------------------------------------------------------------------------------------ tiny
@pytest.mark.parametrize("width, size", [(32, 96), (32, 48), (16, 128)])
def test_tiny_shapes(width, size):
    net = build_backbone("tiny", width=width)
    out = net(torch.randn(2, 3, size, size))
    assert (net.shallow_channels, net.deep_channels) == (2 * width, 8 * width)
    assert out["shallow"].shape == (2, 2 * width, size // 4, size // 4)
    assert out["deep"].shape == (2, 8 * width, size // 8, size // 8)


def test_tiny_trains_everything():
    torch.manual_seed(0)
    net = TinyBackbone(width=8).train()
    assert net.freeze_bn is False and net.frozen_parameters() == []
    before = net.stage3[0].bn2.running_mean.clone()
    out = net(torch.randn(4, 3, 32, 32))
    (out["deep"].square().mean() + out["shallow"].square().mean()).backward()
    assert not torch.equal(before, net.stage3[0].bn2.running_mean)       # BN statistics update
    assert all(p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    groups = net.param_groups()
    assert len(groups["weights"]) + len(groups["biases"]) == len(list(net.parameters()))
    assert all(p.dim() == 1 for p in groups["biases"]) and len(groups["biases"]) == len(_batchnorms(net))


def test_tiny_receptive_field_covers_objects():
    # The deep feature at the centre of a 128 px image must depend on pixels farther apart than
    # the largest objects (60 px) so it can see a whole object and some background around it.
    torch.manual_seed(0)
    net = TinyBackbone().eval()
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    net(x)["deep"][0, :, 8, 8].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 >= 120 and cols.max() - cols.min() + 1 >= 120


def test_load_pretrained_accepts_wrapped_and_prefixed_files(tmp_path):
    torch.manual_seed(0)
    src, dst = TinyBackbone(width=4), TinyBackbone(width=4)
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 1},
               tmp_path / "tiny.pth")
    assert dst.load_pretrained(tmp_path / "tiny.pth").ok
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    # Non-strict: the shape mismatch is warned about and everything else loads.
    wrong = dict(src.state_dict())
    wrong["deep_proj.0.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.warns(UserWarning, match="deep_proj.0.weight"):
        report = TinyBackbone(width=4).load_pretrained(tmp_path / "wrong.pth", strict=False)
    assert [k for k, _, _ in report.mismatched] == ["deep_proj.0.weight"]


def test_build_backbone_names():
    with torch.device("meta"):
        assert isinstance(build_backbone("ResNet38"), ResNet38)
        assert isinstance(build_backbone("resnet101"), ResNet)
    assert isinstance(build_backbone("tiny"), Backbone)
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'.*resnet101"):
        build_backbone("vgg16")
