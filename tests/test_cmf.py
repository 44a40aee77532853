"""Collective matrix factorisation solvers (slrnet.cmf): recovery, monotonicity, optimality bounds, multi-view."""
import pytest
import torch

from slrnet.cmf import (cross_view_agreement, cvlr_factorize, cvlr_step, init_dictionary, l2_normalize,
                        match_atoms, nmf_factorize, planted_views, stack_views, svd_reconstruct)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])



@pytest.fixture(scope="module")
def planted():
    return planted_views(num_atoms=4, channels=16, shapes=((20, 20), (10, 10)), noise=0.05, seed=0)


@pytest.fixture(scope="module")
def planted_nonneg():
    return planted_views(num_atoms=4, channels=16, shapes=((20, 20), (10, 10)), noise=0.05, nonnegative=True,
                         seed=1)


@pytest.mark.parametrize("device", DEVICES)
def test_cvlr_recovers_planted_atoms_from_two_views(planted, device):
    views = [v.to(device) for v in planted.views]
    res = cvlr_factorize(views, num_atoms=4, num_iters=10, temperature=0.1, seed=0)
    assert [tuple(z.shape) for z in res.codes] == [(1, 4, 400), (1, 4, 100)]
    _, cosine = match_atoms(res.dictionary[0], planted.atoms[0])
    assert cosine.min() > 0.95
    torch.testing.assert_close(res.coding.sum(dim=1), torch.ones(1, 500, dtype=torch.float64, device=device))
    # shared atoms: both views' argmax code maps agree with the planted labels of each view
    for z_est, z_true in zip(res.codes, planted.codes):
        order, _ = match_atoms(res.dictionary[0].cpu(), planted.atoms[0])
        assert (z_est[0].cpu()[order].argmax(0) == z_true[0].argmax(0)).float().mean() > 0.95


def test_cvlr_too_soft_temperature_fails_to_separate(planted):
    # at temperature 1 the unit-norm atoms score pixels too weakly: codes stay near-uniform
    soft = cvlr_factorize(planted.views, num_atoms=4, num_iters=10, temperature=1.0)
    sharp = cvlr_factorize(planted.views, num_atoms=4, num_iters=10, temperature=0.1)
    assert soft.coding.max(dim=1).values.mean() < 0.6 < sharp.coding.max(dim=1).values.mean()
    assert sharp.objective[-1] < soft.objective[-1]


def test_nmf_objective_is_non_increasing(planted_nonneg):
    res = nmf_factorize(planted_nonneg.views, num_atoms=4, num_iters=60)
    obj = res.objective[:, 0]
    assert torch.all(obj[1:] <= obj[:-1] * (1 + 1e-12))
    assert obj[-1] < 0.1 * obj[0]
    assert (res.coding >= 0).all() and (res.dictionary >= 0).all()
    _, cosine = match_atoms(res.dictionary[0], planted_nonneg.atoms[0])
    assert cosine.min() > 0.9


@pytest.mark.parametrize("rank", [2, 4, 6])
def test_svd_is_a_lower_bound_for_cvlr_and_nmf(planted_nonneg, rank):
    svd = svd_reconstruct(planted_nonneg.views, rank)
    cvlr = cvlr_factorize(planted_nonneg.views, num_atoms=rank, num_iters=10, temperature=0.05)
    nmf = nmf_factorize(planted_nonneg.views, num_atoms=rank, num_iters=30)
    for res in (cvlr, nmf):
        assert torch.all(svd.objective[-1] <= res.objective.min(dim=0).values)
    # the SVD objective is the error of its own reconstruction
    x = torch.cat(planted_nonneg.views, dim=1)
    torch.testing.assert_close(svd.objective[-1], (x - svd.reconstruction).pow(2).sum(dim=(1, 2)))


def test_three_views_with_different_pixel_counts_and_stacked_input():
    torch.manual_seed(0)
    views = [torch.rand(2, n, 6, dtype=torch.float64) for n in (35, 12, 7)]
    for solver, kw in ((cvlr_factorize, dict(temperature=0.2)), (nmf_factorize, {})):
        from_list = solver(views, num_atoms=3, num_iters=5, **kw)
        from_stack = solver(torch.cat(views, 1), num_atoms=3, num_iters=5, view_sizes=[35, 12, 7], **kw)
        torch.testing.assert_close(from_list.coding, from_stack.coding)
        assert [tuple(z.shape) for z in from_list.codes] == [(2, 3, 35), (2, 3, 12), (2, 3, 7)]
        assert [tuple(r.shape) for r in from_list.reconstructions] == [(2, 35, 6), (2, 12, 6), (2, 7, 6)]
        assert from_list.objective.shape == (5, 2)
    svd = svd_reconstruct(views, 3)
    assert [tuple(z.shape) for z in svd.codes] == [(2, 3, 35), (2, 3, 12), (2, 3, 7)]


def test_float32_agrees_with_float64(planted, planted_nonneg):
    f32 = [v.float() for v in planted.views]
    r64 = cvlr_factorize(planted.views, num_atoms=4, num_iters=5, temperature=0.1)
    r32 = cvlr_factorize(f32, num_atoms=4, num_iters=5, temperature=0.1)
    assert r32.dictionary.dtype == torch.float32
    torch.testing.assert_close(r32.dictionary.double(), r64.dictionary, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(r32.objective.double(), r64.objective, atol=1e-5, rtol=1e-4)
    n64 = nmf_factorize(planted_nonneg.views, num_atoms=4, num_iters=20)
    n32 = nmf_factorize([v.float() for v in planted_nonneg.views], num_atoms=4, num_iters=20)
    torch.testing.assert_close(n32.objective.double(), n64.objective, atol=1e-5, rtol=1e-3)
    torch.testing.assert_close(svd_reconstruct(f32, 4).objective.double(),
                               svd_reconstruct(planted.views, 4).objective, atol=1e-4, rtol=1e-3)


def test_cvlr_step_folds_an_affine_map_exactly():
    torch.manual_seed(0)
    x, d = torch.randn(2, 40, 5, dtype=torch.float64), l2_normalize(torch.randn(2, 3, 7, dtype=torch.float64))
    w, b = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    z_fold, d_fold = cvlr_step(x, d, 0.7, weight=w, bias=b)
    z_lit, d_lit = cvlr_step(x @ w.T + b, d, 0.7)          # the features f(x) materialised
    torch.testing.assert_close(z_fold, z_lit, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(d_fold, d_lit, atol=1e-12, rtol=1e-12)


def test_init_dictionary_is_seeded_and_picks_distinct_rows():
    x = torch.randn(3, 50, 4)
    a = init_dictionary(x, 5, "kmeans++", torch.Generator().manual_seed(1))
    b = init_dictionary(x, 5, "kmeans++", torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    for rows, batch in zip(a, x):
        same = (rows[:, None] == batch[None]).all(dim=-1)                     # (5, 50) atom == data row
        assert (same.sum(dim=1) == 1).all() and same.any(dim=0).sum() == 5   # five distinct data rows
    assert init_dictionary(x, 5, "random", torch.Generator().manual_seed(0)).shape == (3, 5, 4)


def test_match_atoms_is_an_optimal_assignment_where_greedy_is_not():
    # reference atoms with cosines [[0.7, 0.6], [0.5, 0.0]] to the estimated atoms e0, e1 (unit axes):
    # greedy best-pair-first takes (r0, e0) = 0.7 and is left with (r1, e1) = 0.0, sum 0.7;
    # the optimal one-to-one pairing is (r0, e1) + (r1, e0) = 0.6 + 0.5 = 1.1
    estimated = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    reference = torch.tensor([[0.7, 0.6, 0.15 ** 0.5], [0.5, 0.0, 0.75 ** 0.5]], dtype=torch.float64)
    order, cosine = match_atoms(3 * estimated, reference)                 # norms do not matter
    assert order.tolist() == [1, 0]
    torch.testing.assert_close(cosine, torch.tensor([0.6, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("k_est, k_ref", [(5, 5), (6, 4)])
def test_match_atoms_maximises_the_summed_cosine(k_est, k_ref):
    import itertools

    gen = torch.Generator().manual_seed(k_est * 10 + k_ref)
    for _ in range(20):
        est, ref = torch.randn(k_est, 3, generator=gen), torch.randn(k_ref, 3, generator=gen)
        order, cosine = match_atoms(est, ref)
        assert order.dtype == torch.long and len(set(order.tolist())) == k_ref      # one-to-one
        sim = l2_normalize(ref.double(), 0.0) @ l2_normalize(est.double(), 0.0).T    # (K', K)
        torch.testing.assert_close(cosine, sim[torch.arange(k_ref), order])
        best = max(sum(sim[i, j] for i, j in enumerate(p)) for p in itertools.permutations(range(k_est), k_ref))
        assert cosine.sum() >= best - 1e-9


def test_match_atoms_undoes_a_permutation_and_checks_shapes():
    atoms = l2_normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    order, cosine = match_atoms(atoms[perm], atoms)
    torch.testing.assert_close(atoms[perm][order], atoms)
    torch.testing.assert_close(cosine, torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least as many"):
        match_atoms(atoms[:3], atoms)
    with pytest.raises(ValueError, match=r"\(K, C\)"):
        match_atoms(atoms[None], atoms)


def test_cross_view_agreement(planted):
    z1 = planted.codes[0].reshape(1, 4, 20, 20)
    z2 = planted.codes[1].reshape(1, 4, 10, 10)
    assert cross_view_agreement(z1, z1).item() == 1.0
    assert cross_view_agreement(z1, z2).item() > 0.9
    assert cross_view_agreement(z1, z2.flip(1)).item() < 0.5           # atoms relabelled: disagreement


def test_errors_name_the_parameter():
    x = torch.rand(2, 10, 4)
    with pytest.raises(ValueError, match="view_sizes"):
        stack_views(x, view_sizes=[4, 5])
    with pytest.raises(ValueError, match="same B and C"):
        cvlr_factorize([x, torch.rand(2, 10, 3)], num_atoms=2)
    with pytest.raises(ValueError, match="num_atoms"):
        cvlr_factorize(x, num_atoms=0)
    with pytest.raises(ValueError, match="num_atoms"):
        nmf_factorize(x)
    with pytest.raises(ValueError, match="temperature"):
        cvlr_factorize(x, num_atoms=2, temperature=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        nmf_factorize(x - 1, num_atoms=2)
    with pytest.raises(ValueError, match="rank"):
        svd_reconstruct(x, rank=5)
    with pytest.raises(ValueError, match=r"init tensor must be \(B, K, C\)"):
        cvlr_factorize(x, init=torch.rand(2, 3, 5))
    with pytest.raises(ValueError, match="init must be"):
        cvlr_factorize(x, num_atoms=2, init="pca")
    with pytest.raises(TypeError, match="floating point"):
        svd_reconstruct(torch.ones(1, 4, 3, dtype=torch.long), rank=1)


def test_notebook_helpers_and_figures(planted, planted_nonneg):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from slrnet.analysis import factorization_study as study
    from slrnet.viz import factorization as viz_cmf

    views, shapes = study.two_view_features(torch.rand(3, 12, 16), scale=0.5, conv_channels=4)
    assert shapes == [(12, 16), (6, 8)] and [tuple(v.shape) for v in views] == [(1, 192, 9), (1, 48, 9)]
    torch.testing.assert_close(views[1].norm(dim=-1), torch.ones(1, 48))          # unit rows for CVLR
    res = cvlr_factorize(views, num_atoms=3, num_iters=3, temperature=0.1)
    maps = res.code_maps(shapes)
    assert [tuple(m.shape) for m in maps] == [(1, 3, 12, 16), (1, 3, 6, 8)]
    with pytest.raises(ValueError, match="shapes"):
        res.code_maps([(12, 16), (6, 7)])
    errors = study.rank_sweep(planted_nonneg.views, [2, 4], temperature=0.05, cvlr_iters=5, nmf_iters=20)
    assert set(errors) == {"CVLR", "NMF", "SVD"} and errors["SVD"][1] < errors["SVD"][0]
    sweep = study.temperature_sweep(planted.views, planted.atoms[0], [0.05, 1.0], [1, 5])
    assert sweep["min_cosine"][:, 0].min() > 0.95 > sweep["min_cosine"][1, 1]     # tau=1 collapses with T
    # one shared dictionary vs one per view: the separate atoms come in another order per view, and only
    # after Hungarian matching do their code maps agree as the joint ones do (on this clean planted scene)
    comparison = study.separate_vs_joint(planted.views, planted.shapes, 4, 10, 0.1, seed=0)
    agreement = comparison["agreement"]
    assert set(agreement) == {"joint", "separate", "separate (matched)"}
    assert comparison["order"].tolist() != [0, 1, 2, 3] and agreement["separate"] < 0.5
    assert agreement["separate (matched)"] > 0.9 and agreement["joint"] > 0.9
    assert comparison["matched_cosine"].min() > 0.99
    assert "+0.000 over separate atoms matched" in study.format_agreement(comparison)
    # code sharpness: features x c at tau is the same as tau / c; identical atoms give flat codes at any tau
    a = study.code_sharpness(planted.views, planted.atoms[0], 1.0, feature_scale=10.0)
    b = study.code_sharpness(planted.views, planted.atoms[0], 0.1)
    assert a["score_range"] == pytest.approx(b["score_range"]) and a["code_top"] == pytest.approx(b["code_top"])
    assert b["code_top"] > 0.9 > 0.6 > study.code_sharpness(planted.views, planted.atoms[0], 1.0)["code_top"]
    same = planted.atoms[0][:1].expand(4, -1)
    rows = study.sharpness_table(planted.views, [("same", same, 0.01, 1.0), ("planted", planted.atoms[0], 1.0, 1.0)])
    assert rows[0]["atom_cos"] == pytest.approx(1.0) and rows[0]["score_range"] < 1e-9
    assert rows[0]["code_top"] == pytest.approx(0.25) and rows[0]["uniform"] == 0.25
    assert len(study.format_sharpness(rows).splitlines()) == 3
    figs = [viz_cmf.plot_code_maps([z[0] for z in res.codes], shapes),
            viz_cmf.plot_cross_view_agreements(comparison["maps"]),
            viz_cmf.plot_atoms({"a": res.dictionary[0], "b": res.dictionary[0]}),
            viz_cmf.plot_objectives({"CVLR": res}, svd=svd_reconstruct(views, 3)),
            viz_cmf.plot_error_vs_rank([2, 4], errors),
            viz_cmf.plot_sweep(sweep["error"], [1, 5], [0.05, 1.0], "T", "tau", "error", log=True),
            viz_cmf.plot_cross_view_agreement(maps[0][0], maps[1][0])]
    assert all(isinstance(f, Figure) for f in figs)
    matplotlib.pyplot.close("all")


def test_readings_of_the_error_curves():
    from slrnet.analysis import factorization_study as study

    assert study.rises([3.0, 2.0, 2.5, 1.0]) == [(2, 2.0, 2.5)]
    text = study.iteration_reading({"CVLR": [0.3, 0.1, 0.12, 0.11], "NMF": [0.3, 0.2, 0.1, 0.1]})
    assert text.splitlines() == ["CVLR: the error rose at 1 of 3 steps (first at step 2: 0.10000 -> 0.12000); "
                                 "it ends at 0.11000", "NMF: the error never rose; it ends at 0.10000"]
    text = study.rank_reading([1, 2, 4], {"CVLR": [0.2, 0.1, 0.15], "SVD": [0.2, 0.1, 0.05]})
    assert text.splitlines() == ["CVLR: the error rises with K at K=2->4 (0.1000 -> 0.1500)",
                                 "SVD: the error never rises with K"]
