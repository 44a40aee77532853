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


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "literal"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tag", ["it1", "it3", "it2s05"])
def test_factorization_matches_fixture(tag, dtype, fused):
    layer = fixture_layer(tag, dtype)
    layer.fused = fused
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


@pytest.mark.parametrize("num_iters", [1, 3])
def test_the_fused_step_computes_the_formula_as_written(num_iters):
    """fused=True folds W1 into the step; fused=False forms X' = W1 x and runs the formula literally."""
    torch.manual_seed(0)
    fused = FactorizationReconstruction(16, num_iters=num_iters, temperature=0.7).double()
    literal = FactorizationReconstruction(16, num_iters=num_iters, temperature=0.7, fused=False).double()
    literal.load_state_dict(fused.state_dict())
    x, inits = torch.randn(2, 50, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64)
    x_f, inits_f = x.clone().requires_grad_(), inits.clone().requires_grad_()
    x_l, inits_l = x.clone().requires_grad_(), inits.clone().requires_grad_()
    out_f, out_l = fused(x_f, inits_f), literal(x_l, inits_l)
    for a, b in zip(out_f, out_l):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    (out_f[0].sum() + out_f[1].pow(2).sum()).backward()
    (out_l[0].sum() + out_l[1].pow(2).sum()).backward()
    torch.testing.assert_close(x_f.grad, x_l.grad, rtol=1e-10, atol=1e-10)
    for (name, p), q in zip(fused.named_parameters(), literal.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-10, msg=name)


def test_the_module_returns_its_iterates_when_asked():
    torch.manual_seed(1)
    fr = FactorizationReconstruction(8, num_iters=2).double()
    x, inits = torch.randn(1, 30, 8, dtype=torch.float64), torch.randn(1, 4, 8, dtype=torch.float64)
    out, coding, dictionary = fr(x, inits)
    out4, coding4, dictionary4, it = fr(x, inits, num_iters=5, return_iterates=True)
    assert it["codes"].shape == (5, 1, 4, 30) and it["dictionaries"].shape == (6, 1, 4, 8)
    torch.testing.assert_close(it["codes"][-1], coding4)
    torch.testing.assert_close(it["dictionaries"][-1], dictionary4)
    # the first two iterates are the module's own two steps; the first dictionary is l2n(W1 D0)
    again = fr(x, inits, return_iterates=True)
    torch.testing.assert_close(again[1], coding)
    torch.testing.assert_close(again[3]["codes"], it["codes"][:2])
    torch.testing.assert_close(it["dictionaries"][0], torch.nn.functional.normalize(fr.transform1(inits), dim=-1),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(it["reconstruction"], coding4.transpose(1, 2) @ dictionary4)
    # a lower temperature sharpens the codes without touching the weights
    sharp = fr(x, inits, temperature=0.05, return_iterates=True)[1]
    assert sharp.max(dim=1).values.mean() > coding.max(dim=1).values.mean()
    assert fr.temperature == 1.0
    with pytest.raises(ValueError, match="temperature"):
        fr(x, inits, temperature=0)
