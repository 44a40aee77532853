"""Factor diagnostics (slrnet.diagnostics, analysis.factors.checkpoint_diagnostics), the reconstruction ablation
(model.reconstruction, test time), and the CVLR ladder's rungs (slrnet.analysis.cvlr_ladder)."""
import math

import pytest
import torch

from slrnet.analysis import cvlr_ladder as ladder
from slrnet.analysis.factors import effective_rank
from slrnet.config import ConfigError, validate
from slrnet.diagnostics import (effective_rank_of, factor_diagnostics, mean_offdiagonal_cosine,
                                singular_values_of_rows)
from slrnet.models import build_model
from slrnet.models.mods import FactorizationReconstruction
from slrnet.train import Trainer

TINY = {"backbone": "tiny", "num_classes": 5, "decoder_channels": 16, "aspp_dilations": [1, 2, 3, 4],
        "backbone_kwargs": {"width": 8}, "pamr_iter": 2, "pamr_dilations": [1, 2], "scale_factor": 0.75}


def diagnostics_of(codes, atoms, features=None, scores=None):
    """factor_diagnostics of stacked codes (B, K, N) with a one-view 1 x N grid; reconstruction Zᵀ D."""
    B, K, N = codes.shape
    z1 = codes.reshape(B, K, 1, N)
    recon = codes.transpose(1, 2) @ atoms
    features = recon if features is None else features
    scores = codes if scores is None else scores
    return {k: float(v) for k, v in factor_diagnostics(codes, z1, z1, atoms[None], recon, features, scores).items()}


def test_flat_codes_and_identical_atoms_read_as_a_collapse():
    K, N, C = 4, 40, 8
    flat = torch.full((1, K, N), 1.0 / K)
    same = torch.ones(1, K, C) / math.sqrt(C)
    d = diagnostics_of(flat, same)
    assert d["factor_code_top"] == pytest.approx(1 / K) and d["factor_code_entropy"] == pytest.approx(1.0)
    assert d["factor_atom_cos"] == pytest.approx(1.0) and d["factor_rank"] == pytest.approx(1.0, abs=1e-6)
    assert d["factor_score_range"] == pytest.approx(0.0) and d["factor_view_agreement"] == 1.0


def test_one_hot_codes_on_orthogonal_atoms_read_as_a_rank_k_factorisation():
    K, N, C = 4, 40, 8
    winners = torch.arange(N) % K
    one_hot = torch.nn.functional.one_hot(winners, K).T[None].float()            # (1, K, N), balanced
    atoms = torch.eye(K, C)[None]
    d = diagnostics_of(one_hot, atoms)
    assert d["factor_code_top"] == 1.0 and d["factor_code_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert d["factor_atom_cos"] == pytest.approx(0.0) and d["factor_rank"] == pytest.approx(K)
    assert d["factor_score_range"] == pytest.approx(1.0)


def test_spectra_through_the_gram_matrix_equal_the_svd():
    torch.manual_seed(0)
    x = torch.randn(3, 50, 6, dtype=torch.float64)
    torch.testing.assert_close(singular_values_of_rows(x), torch.linalg.svdvals(x))
    for i in range(3):
        assert float(effective_rank_of(singular_values_of_rows(x)[i])) == pytest.approx(effective_rank(x[i]))
    assert float(effective_rank_of(torch.zeros(5))) == 0.0
    atoms = torch.tensor([[[1.0, 0], [0, 1], [1, 1]]])
    assert float(mean_offdiagonal_cosine(atoms)) == pytest.approx((0 + 2 * 2 ** -0.5) / 3)


def test_the_training_forward_reports_diagnostics_and_the_trainer_logs_them(tiny_root, tiny_cfg, tmp_path):
    trainer = Trainer.build(tiny_cfg(tiny_root, **{"train.num_epochs": 1}), tmp_path / "run")
    history = trainer.fit()
    keys = {k for k in history[-1] if k.startswith("train_factor_")}
    assert keys == {"train_factor_" + k for k in ("code_top", "code_entropy", "score_range", "atom_cos",
                                                   "init_atom_cos", "rank", "feature_s2_s1", "view_agreement")}
    K = trainer.model.num_classes
    assert 1 / K - 1e-6 <= history[-1]["train_factor_code_top"] <= 1 and 1 <= history[-1]["train_factor_rank"] <= K
    single = Trainer.build(tiny_cfg(tiny_root, **{"train.num_epochs": 1, "model.use_cvlr": False}), tmp_path / "s")
    assert not any(k.startswith("train_factor_") for k in single.fit()[-1])     # no low-rank module, nothing


def test_reconstruction_removed_or_averaged():
    torch.manual_seed(0)
    fr = FactorizationReconstruction(8).double()
    x, inits = torch.rand(2, 30, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    used, coding, dictionary = fr(x, inits)
    removed, coding_r, _ = fr(x, inits, reconstruction="removed")
    mean, *_ = fr(x, inits, reconstruction="mean")
    assert torch.equal(removed, x) and torch.equal(coding_r, coding)        # the codes are still computed
    recon_mean = (coding.transpose(1, 2) @ dictionary).mean(dim=1, keepdim=True)
    torch.testing.assert_close(mean, torch.relu(x + fr.transform2(torch.relu(recon_mean))))
    assert not torch.allclose(used, mean)
    with pytest.raises(ValueError, match="reconstruction"):
        fr(x, inits, reconstruction="none")


def test_model_reconstruction_option_changes_what_the_heads_see():
    torch.manual_seed(0)
    net = build_model(TINY).eval()
    images = torch.randn(2, 3, 48, 48)
    used = net.predict(images)["masks"]
    net.reconstruction = "removed"
    removed = net.predict(images)["masks"]
    assert not torch.allclose(used, removed)
    torch.manual_seed(0)
    ablated = build_model({**TINY, "reconstruction": "removed"}).eval()
    torch.testing.assert_close(ablated.predict(images)["masks"], removed)      # the same weights, the same switch
    with pytest.raises(ConfigError, match="model.reconstruction"):
        validate({"model": {"use_cvlr": False, "reconstruction": "removed"}})
    with pytest.raises(ConfigError, match="model.reconstruction"):
        validate({"model": {"reconstruction": "mean"}})                        # a test-time ablation only


def test_each_rung_changes_only_what_it_names(tmp_path):
    configs = {s: ladder.ladder_config("shapes", s, "smoke", tmp_path) for s in ladder.SETTINGS}
    full = configs["full_cvlr"]

    def changed(cfg):
        return {f"{sec}.{k}": v for sec in cfg if isinstance(cfg[sec], dict) for k, v in cfg[sec].items()
                if full[sec].get(k) != v}

    c = full["train"]["loss_coeff"]
    assert changed(configs["one_view"]) == {"model.use_cvlr": False}
    assert changed(configs["two_views"]) == {"model.reconstruction": "removed",
                                             "train.loss_coeff": [c[0], c[1], 0.0, c[3]]}
    assert changed(configs["code_consistency"]) == {"model.reconstruction": "removed"}
    assert changed(configs["full_cvlr_tau_0.1"]) == {"model.temperature": 0.1}
    assert changed(configs["full_cvlr_no_code"]) == {"train.loss_coeff": [c[0], c[1], 0.0, c[3]]}


def test_ladder_summary_steps_spreads_and_test_time_changes():
    rows = [{"dataset": "d", "setting": "one_view", "seed": s, "val_miou": v} for s, v in ((0, 0.5), (1, 0.6))]
    rows += [{"dataset": "d", "setting": "full_cvlr", "seed": s, "val_miou": v,
              "test_time": {"mean": {"val_miou": v - 0.1}, "removed": {"val_miou": v - 0.2}}}
             for s, v in ((0, 0.7), (1, 0.8))]
    one, full = ladder.ladder_summary(rows)
    assert one["val_miou_mean"] == pytest.approx(0.55) and one["val_miou_spread"] == pytest.approx(0.1)
    assert full["step_from_previous"] == pytest.approx(0.2) and full["seeds"] == [0, 1]
    assert full["test_time_mean_change"] == pytest.approx(-0.1)
    assert full["test_time_removed_change"] == pytest.approx(-0.2)


def test_ladder_and_regime_readings_quote_the_numbers():
    rows = [{"dataset": "d", "setting": s, "seed": 0, "val_miou": v} for s, v in
            (("one_view", 0.5), ("two_views", 0.6), ("code_consistency", 0.61), ("full_cvlr", 0.7))]
    rows[-1]["test_time"] = {"mean": {"val_miou": 0.69}, "removed": {"val_miou": 0.3}}
    factors = {"code_top": 0.15, "atom_cos": 0.999, "purity": 0.8, "purity_single_atom": 0.79}
    rows[-1]["factors"] = factors
    rows.append({"dataset": "d", "setting": "full_cvlr_tau_0.1", "seed": 0, "val_miou": 0.72,
                 "factors": {**factors, "code_top": 0.6, "atom_cos": 0.3}})
    text = " ".join(ladder.ladder_reading(ladder.ladder_summary(rows), 4.5))
    assert "+0.100" in text and "+20.0 mIoU points" in text and "+4.5" in text and "-0.010" in text
    assert "one seed each" in text
    regime = ladder.regime_reading(rows)
    assert len(regime) == 1 and "0.720" in regime[0] and "0.600 (0.150)" in regime[0]


def test_the_untrained_model_is_the_network_training_starts_from(tiny_root, tiny_cfg, tmp_path):
    """Notebook 04's "before training": the config's network with the seed Trainer.build draws its layers with."""
    from slrnet.analysis.trained_model import untrained_model

    cfg = tiny_cfg(tiny_root)
    trainer = Trainer.build(cfg, tmp_path / "run")
    before = untrained_model(cfg)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before.state_dict()[key]), key
    trainer.release()


def test_the_ladder_script_writes_rows_and_measures_factors_again(tmp_path):
    """experiments/cvlr_ladder.py in the smoke profile: one SLRNet row with its protocol, test-time ablations and
    factors; --refresh-factors measures them again from the saved checkpoint, training nothing."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "experiments" / "cvlr_ladder.py"
    spec = importlib.util.spec_from_file_location("cvlr_ladder_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ladder.json"
    common = ["--profile", "smoke", "--output", str(out), "--runs", str(tmp_path / "runs")]
    assert script.main(["--datasets", "shapes", "--settings", "full_cvlr", "code_consistency", *common]) == 0
    results = json.loads(out.read_text())
    full, code = results["rows"]
    assert full["setting"] == "full_cvlr" and set(full["test_time"]) == {"mean", "removed"}
    assert "test_time" not in code and "factors" in code             # its heads never saw a reconstruction
    assert full["val_miou_per_epoch"][-1] == full["val_miou"] and full["command"].startswith("python experiments/")
    assert set(full["factor_diagnostics_per_epoch"]) >= {"factor_code_top", "factor_atom_cos"}
    before = dict(full["factors"])
    del full["factors"]["features_s2_s1"]
    out.write_text(json.dumps(results))
    assert script.main(["--refresh-factors", *common]) == 0
    again = json.loads(out.read_text())["rows"][0]["factors"]
    assert again["features_s2_s1"] == pytest.approx(before["features_s2_s1"])
    assert again["code_top"] == pytest.approx(before["code_top"])


@pytest.mark.parametrize("dataset", ["shapes", "photos"])
def test_the_no_code_loss_configs_train_the_ladders_regime(dataset, tmp_path):
    """configs/<dataset>_no_code_loss_quick.yaml is exactly the ladder's full_cvlr_no_code run."""
    from slrnet.profiles import dataset_config, training_config

    over = {"misc.seed": 0, "misc.device": "auto", "misc.verbose": 0}
    config = training_config(dataset_config(dataset, "no_code_loss_quick"), "quick", tmp_path, overrides=over)
    regime = ladder.ladder_config(dataset, "full_cvlr_no_code", "quick", tmp_path)
    assert {k: v for k, v in config.items() if k != "_source"} == {k: v for k, v in regime.items() if k != "_source"}
    assert config["train"]["loss_coeff"][2] == 0.0
