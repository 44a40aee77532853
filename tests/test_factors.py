"""slrnet.analysis.factors: extraction of SLRNet's low-rank factors, the numbers that summarise them, image choice.

The extraction re-runs the CVLR iterations step by step; it must agree with the model's own code path
(``SLRNet.factorise`` and the training forward's code maps), in float64 to 1e-10 and in float32.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slrnet.analysis import factors as FX
from slrnet.cmf import cvlr_factorize
from slrnet.losses import code_consistency
from slrnet.models import build_model

TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}}
H, W = 40, 32          # features 10x8, view 2 20x16 -> 5x4
K, C = 5, 16


def tiny_model(**kw):
    torch.manual_seed(0)
    return build_model({**TINY, **kw}).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model(num_iters=3, use_flip=True)


@pytest.fixture(scope="module")
def image():
    return torch.randn(3, H, W, generator=torch.Generator().manual_seed(1))


def flip_drawn(seed: int) -> bool:
    """What SLRNet.second_view draws for one image with a generator seeded ``seed``."""
    return bool(torch.rand(1, generator=torch.Generator().manual_seed(seed))[0] < 0.5)


def resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


# ----------------------------------------------------------------------------- extraction
def test_shapes_and_simplex(model, image):
    f = FX.extract_factors(model, image, generator=torch.Generator().manual_seed(0))
    T = 3
    assert f["view_shapes"] == ((10, 8), (5, 4)) and f["view_sizes"] == (80, 20) and f["num_iters"] == T
    assert f["codes1"].shape == (K, 10, 8) and f["codes2"].shape == (K, 5, 4) and f["codes2_up"].shape == (K, 10, 8)
    assert f["codes1_iters"].shape == (T, K, 10, 8) and f["codes2_iters"].shape == (T, K, 5, 4)
    assert f["codes2_up_iters"].shape == (T, K, 10, 8)
    assert f["dictionary_init"].shape == (K, C) and f["dictionaries"].shape == (T + 1, K, C)
    assert f["objective"].shape == (T,) and f["relative_objective"].shape == (T,)
    assert f["features"].shape == f["reconstruction"].shape == f["output"].shape == (100, C)
    assert f["aux_masks"].shape == (K, 10, 8) and f["masks"].shape == (K, H, W) and f["prediction"].shape == (H, W)
    assert f["image"].shape == (3, H, W) and f["view2"].shape == (3, 20, 16) and f["scores"].shape == (K - 1,)
    torch.testing.assert_close(f["codes1_iters"].sum(1), torch.ones(T, 10, 8))       # a simplex per pixel
    torch.testing.assert_close(f["dictionaries"].norm(dim=-1), torch.ones(T + 1, K), atol=1e-5, rtol=0)
    torch.testing.assert_close(f["masks"].sum(0), torch.ones(H, W))
    assert torch.equal(f["prediction"], f["masks"].argmax(0))
    assert all(t.device.type == "cpu" for t in f.values() if isinstance(t, torch.Tensor))
    # the objective is ||X' - Z_t^T D_t||^2 of the returned factors, and R is the last one
    z = torch.cat([f["codes1"].flatten(1), f["codes2"].flatten(1)], dim=1)              # (K, N)
    torch.testing.assert_close(f["reconstruction"], z.T @ f["dictionaries"][-1])
    recon_err = (f["features"] - f["reconstruction"]).pow(2).sum()
    torch.testing.assert_close(f["objective"][-1], recon_err, rtol=1e-5, atol=0)
    torch.testing.assert_close(f["relative_objective"], f["objective"] / f["features"].pow(2).sum())


def test_image_with_batch_axis_is_the_same(model, image):
    a = FX.extract_factors(model, image, generator=torch.Generator().manual_seed(3))
    b = FX.extract_factors(model, image[None], generator=torch.Generator().manual_seed(3))
    assert torch.equal(a["codes1"], b["codes1"]) and torch.equal(a["dictionaries"], b["dictionaries"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_last_iteration_equals_the_module(dtype, image):
    model = tiny_model(num_iters=3, use_flip=True).to(dtype)
    img = image.to(dtype)[None]
    f = FX.extract_factors(model, img, generator=torch.Generator().manual_seed(0))
    assert f["view2_flipped"] == flip_drawn(0)
    with torch.no_grad():   # the model's own path, with the same view 2
        view2, inverse, _ = model.second_view(img, generator=torch.Generator().manual_seed(0))
        x1, _ = model.features(img)
        x2, _ = model.features(view2)
        aux_logits, aux_masks = model.aux(x1)
        (y1, y2), (z1, z2), dictionary = model.factorise(x1, aux_logits, x2)
    tol = {"atol": 1e-10, "rtol": 1e-10} if dtype == torch.float64 else {}
    assert f["codes1"].dtype == dtype
    torch.testing.assert_close(f["codes1"], z1[0], **tol)
    torch.testing.assert_close(f["codes2"], z2[0], **tol)
    torch.testing.assert_close(f["codes2_up"], inverse(z2, z1.shape[-2:])[0], **tol)
    torch.testing.assert_close(f["dictionaries"][-1], dictionary[0], **tol)
    torch.testing.assert_close(f["output"][:80].T.reshape(C, 10, 8), y1[0], **tol)
    torch.testing.assert_close(f["output"][80:].T.reshape(C, 5, 4), y2[0], **tol)
    torch.testing.assert_close(f["aux_masks"], aux_masks[0], **tol)
    torch.testing.assert_close(f["dictionary_init"], model.initialize_dictionary(x1, aux_logits)[0].T, **tol)


def test_codes_match_the_training_forward(image):
    """Z1 and inv(Z2) are the code maps the training forward feeds to the code-consistency loss."""
    model = tiny_model(num_iters=2, use_flip=True)
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    for seed in (0, 1):       # one draw flips view 2, the other does not
        torch.manual_seed(seed)
        flip = bool(torch.rand(1)[0] < 0.5)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model(image[None], labels)
        torch.manual_seed(seed)
        f = FX.extract_factors(model, image)            # generator=None: the global RNG, as forward
        assert f["view2_flipped"] == flip
        torch.testing.assert_close(f["codes1"], out["maps"]["codes"][0])
        torch.testing.assert_close(f["codes2_up"], out["maps"]["codes2"][0])
        torch.testing.assert_close(code_consistency(f["codes1"][None], f["codes2_up"][None]),
                                   out["losses"]["code"])


def test_view2_is_mapped_back(model, image):
    seeds = {flip_drawn(s): s for s in range(10)}
    assert set(seeds) == {True, False}
    for flipped, seed in seeds.items():
        f = FX.extract_factors(model, image, generator=torch.Generator().manual_seed(seed))
        assert f["view2_flipped"] is flipped
        half = resize(image[None], (20, 16))[0]
        torch.testing.assert_close(f["view2"], half.flip(-1) if flipped else half)
        z2 = f["codes2_iters"].flip(-1) if flipped else f["codes2_iters"]                # undo the flip ...
        torch.testing.assert_close(f["codes2_up_iters"], resize(z2, (10, 8)))            # ... then resize
        if flipped:   # the flip is not a no-op here: without undoing it the maps differ
            assert not torch.allclose(f["codes2_up_iters"], resize(f["codes2_iters"], (10, 8)))


def test_more_iterations_extend_the_same_sequence(model, image):
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    base = FX.extract_factors(model, image, generator=gen())
    longer = FX.extract_factors(model, image, num_iters=6, generator=gen())
    assert longer["num_iters"] == 6 and longer["dictionaries"].shape == (7, K, C)
    torch.testing.assert_close(longer["dictionaries"][:4], base["dictionaries"])
    torch.testing.assert_close(longer["codes1_iters"][:3], base["codes1_iters"])
    torch.testing.assert_close(longer["objective"][:3], base["objective"])
    with pytest.raises(ValueError, match="num_iters"):
        FX.extract_factors(model, image, num_iters=0)


def test_objective_is_the_solvers_on_the_mapped_features(image):
    """cmf.cvlr_factorize on X' = W1 X from D_0 gives the same objective (float64; the solver
    re-normalises D_0 once more, a change of order eps = 1e-6 in the atoms)."""
    model = tiny_model(num_iters=4).double()
    f = FX.extract_factors(model, image.double())
    res = cvlr_factorize(f["features"][None], init=f["dictionaries"][0][None], num_iters=4,
                         temperature=f["temperature"], view_sizes=f["view_sizes"])
    torch.testing.assert_close(res.objective[:, 0], f["objective"], rtol=1e-4, atol=0)
    torch.testing.assert_close(res.dictionary[0], f["dictionaries"][-1], rtol=0, atol=1e-4)


def test_errors_and_training_mode(image):
    single = build_model({**TINY, "use_cvlr": False})
    with pytest.raises(ValueError, match="use_cvlr=False"):
        FX.extract_factors(single, image)
    model = tiny_model().train()
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        FX.extract_factors(model, image[:2])
    with pytest.raises(TypeError, match="float"):
        FX.extract_factors(model, image.long())
    f = FX.extract_factors(model, image)
    assert model.training, "extract_factors must restore the model's mode"
    assert f["num_iters"] == 1


# ----------------------------------------------------------------------------- numbers
def test_effective_rank():
    assert FX.effective_rank(torch.eye(6)[:, :4] * 3.0) == pytest.approx(4.0)           # 4 equal values
    rank1 = torch.outer(torch.arange(1.0, 7.0), torch.tensor([1.0, -2.0, 0.5]))
    assert FX.effective_rank(rank1) == pytest.approx(1.0, abs=1e-6)
    p = np.array([0.75, 0.25])
    assert FX.effective_rank(torch.tensor([3.0, 1.0])) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert FX.effective_rank(torch.zeros(4, 3)) == 0.0
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    assert 1.0 < FX.effective_rank(x) <= 8.0
    torch.testing.assert_close(FX.singular_values(x), torch.linalg.svdvals(x.double()))


def onehot_codes(index: torch.Tensor, k: int, high: float = 0.7) -> torch.Tensor:
    """Codes (k, h, w) with ``high`` on ``index`` and the rest spread evenly."""
    z = torch.full((k, *index.shape), (1 - high) / (k - 1))
    return z.scatter(0, index[None], high)


def test_agreement_disagreement_and_loss():
    a = torch.tensor([[0, 1], [2, 2]])
    b = torch.tensor([[0, 2], [2, 1]])
    z1, z2 = onehot_codes(a, 3), onehot_codes(b, 3, high=0.5)
    assert FX.code_agreement(z1, z2) == 0.5
    dis = FX.code_disagreement(z1, z2)
    torch.testing.assert_close(dis, torch.tensor([[0.2 / 3, 1.2 / 3], [0.2 / 3, 1.2 / 3]]))
    torch.testing.assert_close(dis.mean(), code_consistency(z1[None], z2[None]))
    assert torch.equal(FX.winning_atoms(z1), a)
    assert FX.winning_atoms(z1, (4, 4)).shape == (4, 4)
    with pytest.raises(ValueError, match="same shape|one shape"):
        FX.code_disagreement(z1, z2[:, :1])


def test_atom_class_overlap_purity_identity():
    atoms = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
    mask = np.array([[0, 0, 1, 1], [0, 255, 1, 2], [2, 2, 2, 1], [255, 2, 2, 2]])
    overlap = FX.atom_class_overlap(onehot_codes(atoms, 3), mask, 3)
    np.testing.assert_array_equal(overlap, [[3, 0, 0], [0, 3, 1], [0, 1, 6]])          # 14 valid pixels
    assert FX.purity(overlap) == pytest.approx(12 / 14)
    assert FX.atom_identity_rate(overlap) == pytest.approx(12 / 14)
    assert FX.atom_identity_rate(np.array([[0, 5], [5, 0]])) == 0.0 and FX.purity(np.array([[0, 5], [5, 0]])) == 1.0
    with pytest.raises(ValueError, match=r"\[0, 3\) or 255"):
        FX.atom_class_overlap(onehot_codes(atoms, 3), mask + 3 * (mask == 2), 3)


def test_summarize_factors(model, image):
    fs = [FX.extract_factors(model, image * s, generator=torch.Generator().manual_seed(i))
          for i, s in enumerate((1.0, 0.5))]
    masks = [torch.randint(0, K, (H, W), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    s = FX.summarize_factors(fs, masks)
    assert s["num_images"] == 2 and s["num_atoms"] == K
    assert s["code_agreement"] == pytest.approx(np.mean([FX.code_agreement(f["codes1"], f["codes2_up"]) for f in fs]))
    assert s["effective_rank_features"] == pytest.approx(np.mean([FX.effective_rank(f["features"]) for f in fs]))
    assert s["effective_rank_reconstruction"] <= K + 1e-6
    assert s["final_objective"] == pytest.approx(np.mean([float(f["objective"][-1]) for f in fs]))
    pooled = FX.atom_class_overlap(fs[0]["codes1"], masks[0], K) + FX.atom_class_overlap(fs[1]["codes1"], masks[1], K)
    assert s["overlap"] == pooled.tolist() and s["purity"] == pytest.approx(FX.purity(pooled))
    assert s["purity_single_atom"] <= s["purity"] + 1e-12
    assert "purity" not in FX.summarize_factors(fs)
    with pytest.raises(ValueError, match="2 factors"):
        FX.summarize_factors(fs, masks[:1])


# ----------------------------------------------------------------------------- notebook 04's images
def test_select_images():
    class Split(SimpleNamespace):     # the attributes of VOCSegmentation that select_images reads
        def __len__(self):
            return len(self.names)

    dataset = Split(names=[f"img{i}" for i in range(10)], split="val", root="/data")
    assert FX.select_images(dataset, ["img3", "img0"]) == [3, 0]
    picked = FX.select_images(dataset, None, count=4, seed=0)
    assert len(set(picked)) == 4 and picked == sorted(picked) and picked == FX.select_images(dataset, None, 4, 0)
    assert FX.select_images(dataset, None, count=50) == list(range(10))
    with pytest.raises(ValueError, match="nope"):
        FX.select_images(dataset, ["img1", "nope"])


def test_code_sharpness_reads_the_codes_and_the_scores(image):
    model = tiny_model(num_iters=1, use_flip=False)
    soft = FX.extract_factors(model, image)
    sharp = FX.extract_factors(model, image, temperature=0.01)
    a, b = FX.code_sharpness(soft), FX.code_sharpness(sharp)
    k = soft["codes1"].shape[0]
    assert a["uniform"] == pytest.approx(1 / k) and b["temperature"] == 0.01 and a["temperature"] == 1.0
    assert a["min"] <= 1 / k <= a["max"] and 1 / k <= a["mean_top"] <= 1
    assert b["mean_top"] > a["mean_top"] and b["score_range"] == pytest.approx(100 * a["score_range"], rel=1e-4)
    codes = torch.cat([soft["codes1"].flatten(1), soft["codes2"].flatten(1)], 1)
    assert a["mean_top"] == pytest.approx(float(codes.max(0).values.mean()))
    # the first step's scores: the initial dictionary against X'
    scores = soft["dictionaries"][0] @ soft["features"].T
    assert a["score_range"] == pytest.approx(float((scores.max(0).values - scores.min(0).values).mean()), rel=1e-5)
    assert torch.equal(model.factorization_reconstruction.transform1.weight,
                       tiny_model(num_iters=1, use_flip=False).factorization_reconstruction.transform1.weight)
