"""ASPP, GCI, StochasticGate and PAMR against the authors' golden vectors (tests/fixtures/*.npz).

float64 at atol = rtol = 1e-10, float32 at the reference README's tolerances (1e-5; GCI 1e-4).
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slrnet.models.mods import ASPP, GCI, PAMR, Dropout, StochasticGate, keep_mask, run_pamr
from slrnet.models.mods.pamr import NEIGHBOUR_OFFSETS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOL64 = dict(atol=1e-10, rtol=1e-10)
TOL32 = dict(atol=1e-5, rtol=1e-5)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def load(name):
    with np.load(FIXTURES / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def t(a, dtype=None):
    x = torch.from_numpy(np.asarray(a))
    return x if dtype is None else x.to(dtype)


def close(actual, expected, **tol):
    torch.testing.assert_close(actual, t(expected, actual.dtype), **tol)


def net_rows(prefix):
    rows = json.loads((FIXTURES / "resnet38d_keys.json").read_text())["net_state_dict"]
    return {r["key"][len(prefix):]: tuple(r["shape"]) for r in rows if r["key"].startswith(prefix)}


def load_benchmark_reference():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "pamr.py"
    spec = importlib.util.spec_from_file_location("pamr_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- ASPP
def test_aspp_state_dict_matches_official_keys_and_shapes():
    with torch.device("meta"):   # the real 4096-channel module, without allocating its 30M weights
        aspp = ASPP(4096, 256, dilations=(1, 12, 24, 36))
    ours = {k: tuple(v.shape) for k, v in aspp.state_dict().items()}
    assert ours == net_rows("aspp.")


def test_aspp_forward_equals_its_definition():
    torch.manual_seed(0)
    aspp = ASPP(6, 4, dilations=(1, 2, 3, 5)).double()
    for m in aspp.modules():   # non-trivial BN statistics so that they matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    aspp.eval()
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64)

    def cbr(x, conv, bn, dilation=1):
        pad = dilation if conv.kernel_size[0] == 3 else 0
        y = F.conv2d(x, conv.weight, padding=pad, dilation=dilation)
        return F.relu(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps))

    branches = [cbr(x, getattr(aspp, f"aspp{i}").atrous_conv, getattr(aspp, f"aspp{i}").bn, d)
                for i, d in zip((1, 2, 3, 4), (1, 2, 3, 5))]
    pooled = cbr(x.mean((2, 3), keepdim=True), aspp.global_avg_pool[1], aspp.global_avg_pool[2])
    branches.append(pooled.expand(-1, -1, 9, 11))
    expected = cbr(torch.cat(branches, 1), aspp.conv1, aspp.bn1)
    torch.testing.assert_close(aspp(x), expected, **TOL64)


def test_aspp_uses_the_norm_layer_factory_and_checks_input():
    from functools import partial
    aspp = ASPP(8, 4, dilations=(1, 2, 3, 4), norm_layer=partial(torch.nn.BatchNorm2d, momentum=0.05))
    norms = [m for m in aspp.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6 and all(m.momentum == 0.05 for m in norms)
    with pytest.raises(ValueError, match="ASPP.forward"):
        aspp(torch.randn(2, 7, 5, 5))
    with pytest.raises(ValueError, match="dilations"):
        ASPP(8, 4, dilations=(1, 2, 3))


def test_aspp_trains_with_a_batch_of_one():
    torch.manual_seed(0)
    aspp = ASPP(6, 4, dilations=(1, 2, 3, 4)).train()
    x = torch.randn(1, 6, 5, 5)
    out = aspp(x)                                        # the original raises here (BN on 1 value)
    assert out.shape == (1, 4, 5, 5)
    pool_bn = aspp.global_avg_pool[2]
    assert torch.equal(pool_bn.running_mean, torch.zeros(4))   # the pooled branch used, not updated, its stats
    assert not torch.equal(aspp.bn1.running_mean, torch.zeros(4))
    aspp(torch.randn(2, 6, 5, 5))                        # batches of two use batch statistics as usual
    assert not torch.equal(pool_bn.running_mean, torch.zeros(4))


# ----------------------------------------------------------------------------- GCI
def gci_from_fixture(z, dtype):
    gci = GCI(256).to(dtype)    # cast first: load_state_dict copies into the existing dtype
    state = {k[2:]: t(v) for k, v in z.items() if k.startswith("w/")}
    gci.load_state_dict(state, strict=True)
    return gci


def test_gci_keys_and_bn_settings_match_the_net():
    gci = GCI(256)
    assert {k: tuple(v.shape) for k, v in gci.state_dict().items()} == net_rows("shallow_mask.")
    norms = [m for m in gci.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    z = load("gci")
    assert all(m.eps == float(z["bn_eps"]) and m.momentum == float(z["bn_momentum"]) for m in norms)
    assert gci.fc_skip[1].affine is False


def test_gci_eval_and_train_reproduce_fixture_float64():
    z = load("gci")
    gci = gci_from_fixture(z, torch.float64)
    x, y = t(z["x_shallow"]), t(z["y_deep"])
    close(gci.eval()(x, y), z["out_eval"], **TOL64)
    old_mean = gci.fc_skip[1].running_mean.clone()
    close(gci.train()(x, y), z["out_train"], **TOL64)
    # training mode updates the statistics with momentum 0.05 (here checked on the skip branch)
    batch_mean = F.conv2d(x, gci.fc_skip[0].weight).mean((0, 2, 3))
    torch.testing.assert_close(gci.fc_skip[1].running_mean, 0.95 * old_mean + 0.05 * batch_mean, **TOL64)


def test_gci_float32_within_readme_tolerance():
    z = load("gci")
    gci = gci_from_fixture(z, torch.float32)
    x, y = t(z["x_shallow"], torch.float32), t(z["y_deep"], torch.float32)
    close(gci.eval()(x, y), z["out_eval"], atol=1e-4, rtol=1e-5)
    close(gci.train()(x, y), z["out_train"], atol=1e-4, rtol=1e-5)


# ----------------------------------------------------------------------------- Stochastic gate
@pytest.mark.parametrize("dtype,tol", [(torch.float64, TOL64), (torch.float32, TOL32)])
def test_stochastic_gate_reproduces_fixture(dtype, tol):
    z = load("stochastic_gate")
    sg = StochasticGate(float(z["alpha"]))
    x1, x2 = t(z["x1"], dtype), t(z["x2"], dtype)
    close(sg.eval()(x1, x2), z["out_eval"], **tol)
    close(sg.train()(x1, x2, keep_mask=t(z["train_mask_drop"], dtype)), z["out_train"], **tol)


def test_stochastic_gate_random_mask_is_binary_with_the_right_rate():
    sg = StochasticGate(0.3).train()
    x1, x2 = torch.zeros(4, 16, 40, 40), torch.ones(4, 16, 40, 40)
    torch.manual_seed(1)
    out = sg(x1, x2)                                    # kept: -0.3/0.7, dropped: x2 = 1
    kept = torch.isclose(out, torch.full_like(out, -0.3 / 0.7))
    assert bool((kept | (out == 1)).all())
    assert abs(kept.double().mean().item() - 0.7) < 0.01
    torch.manual_seed(1)
    assert torch.equal(sg(x1, x2), out)                 # the draw follows torch's RNG
    with pytest.raises(ValueError, match="keep_mask"):
        sg(x1, x2, keep_mask=torch.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        sg(x1, x2[:, :3])


# ----------------------------------------------------------------------------- Dropout
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_has_nn_dropouts_distribution_and_scaling(p):
    x = torch.full((8, 32, 24, 24), 2.0, requires_grad=True)
    torch.manual_seed(0)
    out = Dropout(p).train()(x)
    kept = out != 0
    assert torch.allclose(out[kept], torch.tensor(2.0 / (1 - p)))    # inverted dropout: kept values scaled
    n = kept.numel()
    assert abs(kept.double().mean().item() - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5   # 4 standard errors
    out.sum().backward()                                               # gradient: the same mask and scale
    assert torch.equal(x.grad, kept.to(x.dtype) / (1 - p))
    reference = F.dropout(torch.full_like(x, 2.0), p, training=True)  # the same support as nn.Dropout's
    assert set(reference.unique().tolist()) == set(out.detach().unique().tolist())


def test_dropout_is_the_identity_in_eval_and_keeps_nn_dropouts_interface():
    drop = Dropout(0.5)
    assert isinstance(drop, torch.nn.Dropout) and repr(drop) == repr(torch.nn.Dropout(0.5))
    x = torch.randn(2, 3, 4, 4)
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    y = x.clone()
    torch.manual_seed(3)
    out = Dropout(0.5, inplace=True).train()(y)
    torch.manual_seed(3)
    assert out is y and torch.equal(out, Dropout(0.5).train()(x))


def test_keep_mask_draws_in_float32_whatever_the_dtype():
    like = torch.zeros(64, 64, 64, dtype=torch.bfloat16)
    torch.manual_seed(0)
    kappa = keep_mask(like, 0.1)
    assert kappa.dtype == torch.bfloat16 and set(kappa.unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(0)
    assert torch.equal(kappa, keep_mask(like.float(), 0.1).to(torch.bfloat16))   # the same draw in float32
    assert abs(kappa.float().mean().item() - 0.9) < 0.005
    with pytest.raises(ValueError, match="rate"):
        keep_mask(like, 1.0)


# ----------------------------------------------------------------------------- PAMR
@pytest.mark.parametrize("tag", ["full", "d1"])
def test_pamr_reproduces_fixture_float64(tag):
    z = load("pamr")
    pamr = PAMR(int(z[f"{tag}_num_iter"]), z[f"{tag}_dilations"].tolist())
    image, mask = t(z["image"]), t(z["mask"])
    close(pamr.upsample_mask(mask, image.shape[-2:]), z[f"{tag}_mask_up"], **TOL64)
    close(pamr.affinity(image), z[f"{tag}_affinity"], **TOL64)
    close(pamr(image, mask), z[f"{tag}_refined"], **TOL64)


@pytest.mark.parametrize("tag", ["full", "d1"])
def test_pamr_float32_within_readme_tolerance(tag):
    z = load("pamr")
    pamr = PAMR(int(z[f"{tag}_num_iter"]), z[f"{tag}_dilations"].tolist())
    out = pamr(t(z["image"], torch.float32), t(z["mask"], torch.float32))
    assert out.dtype == torch.float32
    close(out, z[f"{tag}_refined"], **TOL32)


def test_run_pamr_reproduces_fixture_without_touching_the_input():
    z = load("pamr")
    pamr = PAMR(10, (1, 2, 4, 8, 12, 24))
    image, mask = t(z["runpamr_image"]), t(z["runpamr_mask"]).clone()
    close(run_pamr(pamr, image, mask), z["runpamr_refined"], **TOL64)
    close(run_pamr(pamr, image, mask, bg_pow=3), z["runpamr_bgpow3_refined"], **TOL64)
    # deviation from the original: its in-place background cube is NOT applied to the caller's mask
    assert torch.equal(mask, t(z["runpamr_mask"]))
    expected_after = torch.cat([mask[:, :1] ** 3, mask[:, 1:]], dim=1)     # what the original leaves behind
    close(expected_after, z["runpamr_bgpow3_mask_after"], **TOL64)
    assert not torch.allclose(mask, expected_after)


def test_pamr_buffers_match_official_checkpoint_layout():
    pamr = PAMR()
    assert {k: tuple(v.shape) for k, v in pamr.state_dict().items()} == net_rows("_aff.")
    pamr.load_state_dict({k: v.clone() for k, v in pamr.state_dict().items()}, strict=True)
    # the kernels are the described shift kernels: conv at dilation d = centre - neighbour / neighbour copy
    x = torch.randn(1, 1, 7, 9, dtype=torch.float64)
    for d in (1, 3):
        padded = F.pad(x, (d,) * 4, mode="replicate")
        copies = F.conv2d(padded, pamr.aff_m.kernel.double(), dilation=d)[0]            # (8, H, W)
        diffs = F.conv2d(padded, pamr.aff_x.kernel.double(), dilation=d)[0]
        window = F.conv2d(padded, pamr.aff_std.kernel.double(), dilation=d)[0]          # (9, H, W)
        for i, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
            shifted = padded[0, 0, d + dy * d:d + dy * d + 7, d + dx * d:d + dx * d + 9]
            assert torch.equal(copies[i], shifted)
            torch.testing.assert_close(diffs[i], x[0, 0] - shifted, **TOL64)
        assert torch.equal(window[4], x[0, 0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch,classes,image_hw,mask_hw,dilations,num_iter", [
    (2, 3, (13, 17), (5, 6), (1, 2, 4, 8, 12, 24), 4),     # dilations larger than the image
    (1, 4, (10, 10), (10, 10), (1, 3), 2),
])
def test_pamr_equals_straightforward_formulation(device, batch, classes, image_hw, mask_hw, dilations, num_iter):
    reference = load_benchmark_reference().reference_pamr
    g = torch.Generator().manual_seed(3)
    image = torch.rand(batch, 3, *image_hw, generator=g, dtype=torch.float64).to(device)
    mask = torch.randn(batch, classes, *mask_hw, generator=g, dtype=torch.float64).softmax(1).to(device)
    pamr = PAMR(num_iter, dilations).to(device)
    with torch.no_grad():
        ours = pamr(image, mask)
        expected = reference(image, mask, num_iter, dilations)
    torch.testing.assert_close(ours, expected, **TOL64)


def test_pamr_dtypes_and_flat_images():
    pamr = PAMR(3, (1, 2))
    g = torch.Generator().manual_seed(0)
    image, mask = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 4, 4, 4, generator=g).softmax(1)
    exact = pamr(image.double(), mask.double())
    assert pamr(image, mask.double()).dtype == torch.float64                      # promoted
    half = pamr(image.half(), mask.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.double(), exact, atol=5e-3, rtol=0)
    # a flat image has sigma = 0: the 1e-8 guard gives uniform weights, no NaN
    flat = torch.full((1, 3, 6, 6), 0.5, dtype=torch.float16)
    torch.testing.assert_close(pamr.affinity(flat.float()), torch.full((1, 1, 16, 6, 6), 1 / 16))
    assert torch.isfinite(pamr(flat, mask.half())).all()
    with pytest.raises(ValueError, match="PAMR"):
        pamr(image[0], mask)
    with pytest.raises(ValueError, match="PAMR"):
        pamr(image, mask[:, :, None])
