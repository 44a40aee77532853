"""CVLR layers against the official golden vectors (fixture README sections 1-2), plus consistency with slrnet.cmf."""
from pathlib import Path

import numpy as np
import pytest
import torch

from slrnet.cmf import cvlr_factorize
from slrnet.models.mods.cvlr import DictionaryInitialization, FactorizationReconstruction

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CVLR = np.load(FIXTURES / "cvlr_factorization.npz")
DINIT = np.load(FIXTURES / "dictionary_init.npz")
TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5)}
GRAD_NAMES = ["x", "inits", "transform1_weight", "transform1_bias", "transform2_weight", "transform2_bias"]



def t(name, dtype, data=CVLR):
    return torch.tensor(data[name], dtype=dtype)


def fixture_layer(tag, dtype):
    layer = FactorizationReconstruction(int(CVLR["C"]), num_iters=int(CVLR[f"{tag}_num_iters"]),
                                        temperature=1.0 / float(CVLR[f"{tag}_scale"]))
    layer.load_state_dict({f"{m}.{p}": t(f"{m}_{p}", torch.float64) for m in ("transform1", "transform2")
                           for p in ("weight", "bias")})
    return layer.to(dtype)


def close(actual, name, dtype):
    np.testing.assert_allclose(actual.detach().double().numpy(), CVLR[name], **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tag", ["it1", "it3", "it2s05"])
def test_factorization_matches_fixture(tag, dtype):
    layer = fixture_layer(tag, dtype)
    x, inits = t("x", dtype).requires_grad_(), t("inits", dtype).requires_grad_()
    x_out, coding, dictionary = layer(x, inits)
    for name, value in (("x_out", x_out), ("coding", coding), ("dictionary", dictionary)):
        close(value, f"{tag}_{name}", dtype)
    wrt = [x, inits, layer.transform1.weight, layer.transform1.bias, layer.transform2.weight, layer.transform2.bias]
    loss = (x_out * t("R", dtype)).sum()
    loss_all = loss + (coding * t("R_coding", dtype)).sum() + (dictionary * t("R_dictionary", dtype)).sum()
    for value, prefix in ((loss, "grad"), (loss_all, "gradall")):
        grads = torch.autograd.grad(value, wrt, retain_graph=True)
        for g, name in zip(grads, GRAD_NAMES):
            close(g, f"{tag}_{prefix}_{name}", dtype)
    close(loss, f"{tag}_loss", dtype)
    close(loss_all, f"{tag}_loss_all", dtype)


def test_state_dict_keys_match_official_names():
    assert sorted(FactorizationReconstruction(8).state_dict()) == [
        "transform1.bias", "transform1.weight", "transform2.bias", "transform2.weight"]
    assert list(DictionaryInitialization().state_dict()) == []


def test_layer_with_identity_map_is_the_cmf_solver():
    # transform1 = identity: the layer's coding / dictionary are exactly cvlr_factorize's
    torch.manual_seed(0)
    x, inits = torch.randn(2, 30, 8, dtype=torch.float64), torch.randn(2, 4, 8, dtype=torch.float64)
    layer = FactorizationReconstruction(8, num_iters=3, temperature=0.5).double()
    with torch.no_grad():
        layer.transform1.weight.copy_(torch.eye(8))
        layer.transform1.bias.zero_()
    _, coding, dictionary = layer(x, inits)
    res = cvlr_factorize(x, num_iters=3, temperature=0.5, init=inits)
    torch.testing.assert_close(coding, res.coding, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(dictionary, res.dictionary, atol=1e-12, rtol=1e-12)


def test_layer_does_not_keep_transformed_features_for_backward():
    # memory-lean: besides the input, only ReLU(reconstruction) and x_out are (B, N, C) tensors kept
    B, N, C, K = 2, 50, 8, 3
    layer = FactorizationReconstruction(C)
    x, inits = torch.rand(B, N, C, requires_grad=True), torch.randn(B, K, C)
    big = []

    def pack(s):
        if s.numel() == B * N * C and s.data_ptr() != x.data_ptr():
            big.append(s.data_ptr())
        return s

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda s: s):
        layer(x, inits)
    assert len(set(big)) <= 2


def test_factorization_rejects_bad_shapes_and_arguments():
    layer = FactorizationReconstruction(8)
    with pytest.raises(ValueError, match=r"x of shape \(B, N, 8\)"):
        layer(torch.randn(2, 10, 7), torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"inits of shape \(2, K, 8\)"):
        layer(torch.randn(2, 10, 8), torch.randn(3, 3, 8))
    with pytest.raises(ValueError, match="temperature"):
        FactorizationReconstruction(8, temperature=0.0)
    with pytest.raises(ValueError, match="num_iters"):
        FactorizationReconstruction(8, num_iters=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_dictionary_init_matches_fixture_with_gradients(dtype):
    features = t("features", dtype, DINIT).requires_grad_()
    logits = t("logits", dtype, DINIT).requires_grad_()
    out = DictionaryInitialization(detach=False)(features, logits)
    grads = torch.autograd.grad((out * t("R", dtype, DINIT)).sum(), [features, logits])
    for value, name in ((out, "dictionary"), (grads[0], "grad_features"), (grads[1], "grad_logits")):
        np.testing.assert_allclose(value.detach().double().numpy(), DINIT[name], **TOL[dtype], err_msg=name)


def test_dictionary_init_stops_gradients_by_default():
    features = t("features", torch.float64, DINIT).requires_grad_()
    logits = t("logits", torch.float64, DINIT).requires_grad_()
    out = DictionaryInitialization()(features, logits)
    assert not out.requires_grad
    np.testing.assert_allclose(out.numpy(), DINIT["dictionary"], atol=1e-10, rtol=1e-10)
    with pytest.raises(ValueError, match="features"):
        DictionaryInitialization()(features, logits[..., :5])
