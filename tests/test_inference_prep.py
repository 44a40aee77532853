"""Test-time preparation (slrnet.models.inference): BatchNorm folding and channels-last compute the same network."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from slrnet.infer import Predictor, TestConfig
from slrnet.models.loading import load_trained_model
from slrnet.models import build_model, build_trained_model
from slrnet.models.inference import (InferenceOnlyModel, fold_conv_bn, is_prepared, prepare_for_inference,
                                     to_model_layout)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}}


def randomise_batchnorms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking BN statistics and affines (at init they are the identity, which folds trivially)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
                if m.affine:
                    m.weight.copy_(torch.randn(c, generator=g))
                    m.bias.copy_(torch.randn(c, generator=g) * 0.3)
    return model.eval()


def count_bn(model):
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("name, extra", [("slrnet", {}), ("single_stage", {}), ("slrnet_semi", {}),
                                         ("slrnet_semi_wo_cls", {}), ("slrnet_lid_wide", {}),
                                         ("slrnet", {"backbone": "resnet101", "decoder_channels": 256})])
def test_prepared_model_predicts_what_the_original_does(name, extra):
    torch.manual_seed(0)
    cfg = {**TINY, "name": name, **extra}
    if extra.get("backbone") == "resnet101":
        cfg.pop("backbone_kwargs")
    model = randomise_batchnorms(build_model(cfg).double())
    bn_before = count_bn(model)
    prepared = prepare_for_inference(model, probe_size=32)
    assert count_bn(prepared) == bn_before - prepared.prepared_for_inference["folded_bn"] < bn_before  # folded
    assert count_bn(model) == bn_before                          # the original keeps its BatchNorms
    assert not is_prepared(model) and is_prepared(prepared)
    x = torch.randn(2, 3, 40, 56, dtype=torch.float64)
    with torch.no_grad():
        a, b = model.predict(x), prepared.predict(to_model_layout(prepared, x))
    torch.testing.assert_close(b["masks"], a["masks"], rtol=0, atol=1e-12)   # float64: the same function
    if a["scores"] is not None:
        torch.testing.assert_close(b["scores"], a["scores"], rtol=1e-10, atol=1e-10)


def test_released_network_prepared_matches_in_float64(official_net_state):
    from slrnet.config import load_config

    cfg = load_config(CONFIGS / "voc_wss_resnet38.yaml")
    model = build_trained_model(cfg["model"], official_net_state, dtype=torch.float64).eval()
    prepared = prepare_for_inference(model, probe_size=32)
    # every BN that reads a conv output is folded: the 34 below are the pairs of WideResNet-38 and the heads,
    # the 17 left are the pre-activation BNs (they read a residual sum) and GCI's shallow-side BN on raw conv3
    assert prepared.prepared_for_inference["folded_bn"] == 34 and count_bn(prepared) == 17
    x = torch.randn(1, 3, 48, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model.predict(x), prepared.predict(to_model_layout(prepared, x))
    assert (b["masks"] - a["masks"]).abs().max() < 1e-12
    assert (b["scores"] - a["scores"]).abs().max() < 1e-10


def test_prepared_model_refuses_training_and_the_original_still_trains():
    model = build_model(TINY).eval()
    prepared = prepare_for_inference(model, probe_size=32)
    with pytest.raises(InferenceOnlyModel, match="prepared for inference"):
        prepared.train()
    prepared.eval()                                              # eval stays allowed
    model.train()
    assert model.training


def test_fold_conv_bn_is_the_affine_formula():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=True).double(), nn.BatchNorm2d(4).double()
    randomise_batchnorms(bn)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_conv_bn(conv, bn)
        torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-12)


class ConvFeedsTwo(nn.Module):
    """conv -> BN, and the raw conv output also goes to a second consumer (a module or a functional op)."""

    def __init__(self, functional: bool):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU()
        self.functional = functional

    def predict(self, x):
        y = self.conv(x)
        other = y * 2 if self.functional else self.act(y)
        return {"scores": None, "masks": (self.bn(y) + other).softmax(1)}


def test_a_conv_output_read_by_another_module_is_not_folded():
    model = randomise_batchnorms(ConvFeedsTwo(functional=False))
    prepared = prepare_for_inference(model, probe_size=16)
    assert prepared.prepared_for_inference["folded_bn"] == 0


def test_a_wrong_fold_is_caught_by_the_probe():
    # a functional second reader is invisible to module hooks: the probe comparison must refuse the result
    model = randomise_batchnorms(ConvFeedsTwo(functional=True))
    with pytest.raises(RuntimeError, match="differs from the original"):
        prepare_for_inference(model, probe_size=16)


def test_the_optimised_predictor_gives_the_same_label_maps():
    torch.manual_seed(0)
    model = randomise_batchnorms(build_model(TINY))
    g = torch.Generator().manual_seed(3)
    samples = [{"image": torch.randn(3, 36, 44, generator=g), "name": f"s{i}", "mask": None, "has_mask": False}
               for i in range(3)]
    test = TestConfig(scales=[1.0, 0.75], flip=True, resize="tensor_bilinear")
    plain = list(Predictor(model, test, device="cpu", optimize=False).iter_dataset(samples, keep_probs=True))
    fast = list(Predictor(model, test, device="cpu", optimize=True).iter_dataset(samples, keep_probs=True))
    assert model.training is False and not is_prepared(model)
    for a, b in zip(plain, fast):
        assert (a["pred"] == b["pred"]).all() and a["kept"] == b["kept"]
        assert abs(a["probs"] - b["probs"]).max() < 1e-5


def test_load_model_prepare_readies_it_in_place(tmp_path):
    from slrnet.checkpoint import save_checkpoint
    from slrnet.config import load_config, merge_overrides
    config = CONFIGS / "shapes_quick.yaml"
    cfg = merge_overrides(load_config(config), {"model.pretrained": ""})
    model = build_model(cfg["model"])
    path = tmp_path / "m.pth"
    save_checkpoint(path, {"state_dict": model.state_dict()})
    prepared, _ = load_trained_model(path, config, prepare=True)
    assert is_prepared(prepared)
