"""slrnet.analysis.trained_model: the model notebooks 04 and 05 work on.

Where the published weakly supervised model lives; the one loader (slrnet.models.loading.load_trained_model)
on a tiny random SLRNet saved as the Trainer saves it (its state with the full config) and as a Trainer run
without a config inside; clear errors for checkpoints it cannot rebuild a model from; resolve_config_path;
load_or_train picking the published model, a given one, or training the smoke profile's short run (a few
seconds on 2 CPU cores).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slrnet.analysis import trained_model as NM
from slrnet.checkpoint import save_checkpoint
from slrnet.config import save_config, validate
from slrnet.models import build_model
from slrnet.models.loading import load_trained_model
from slrnet.profiles import PROFILES, resolve_config_path, training_config

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "shapes_quick.yaml"
TINY = {"name": "slrnet", "backbone": "tiny", "num_classes": 5, "decoder_channels": 16,
        "aspp_dilations": [1, 2, 3, 4], "backbone_kwargs": {"width": 8}, "num_iters": 2}



@pytest.fixture(scope="module")
def tiny():
    """A random tiny SLRNet (eval mode) and its full config."""
    cfg = validate({"model": TINY})
    torch.manual_seed(0)
    return build_model(cfg["model"]).eval(), cfg


def notebook_02_state(model, cfg) -> dict:
    """What notebook 02 writes to checkpoint.pth: the Trainer's state of its last epoch, config included."""
    return {"state_dict": model.state_dict(), "epoch": 0, "optimizer": {}, "scaler": {}, "global_step": 3,
            "best_miou": -1.0, "history": [], "config": cfg}


def assert_same_model(a, b):
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], value), key
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(a.predict(image)["masks"], b.predict(image)["masks"])


def test_the_published_model_lives_under_the_output_root(tiny, tmp_path):
    model, cfg = tiny
    out = tmp_path / "outputs" / "04_visualize_low_rank_factors"
    assert NM.published_model(out) == tmp_path.resolve() / "outputs" / "models" / "weakly_supervised.pth"
    assert NM.published_model(str(out) + "/") == NM.published_model(out)
    trainer_dir = tmp_path / "outputs" / "02_train_weakly_supervised"
    assert NM.publish_model(notebook_02_state(model, cfg), trainer_dir) == NM.published_model(out)
    with pytest.raises(ValueError, match="'state_dict' and 'config'"):
        NM.publish_model({"state_dict": model.state_dict()}, trainer_dir)


def test_load_model_round_trip_as_notebook_02_saves(tiny, tmp_path):
    model, cfg = tiny
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, notebook_02_state(model, cfg))
    loaded, loaded_cfg = load_trained_model(path, device="cpu")
    assert loaded_cfg == cfg and not loaded.training
    assert loaded.factorization_reconstruction.num_iters == 2
    assert_same_model(model, loaded)


def test_load_model_trainer_run_reads_the_runs_config(tiny, tmp_path):
    model, cfg = tiny
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "last.pth", {"state_dict": model.state_dict()})   # no config inside
    with pytest.raises(ValueError, match=r"no config given.*config\.yaml"):
        load_trained_model(run / "checkpoints" / "last.pth")
    save_config(cfg, run / "config.yaml")                   # as Trainer writes it next to checkpoints/
    loaded, loaded_cfg = load_trained_model(run / "checkpoints" / "last.pth", device="cpu")
    assert loaded_cfg["model"] == cfg["model"]
    assert_same_model(model, loaded)


def test_load_model_errors_name_the_file_and_what_is_missing(tiny, tmp_path):
    model, _ = tiny
    bare = tmp_path / "bare.pth"
    save_checkpoint(bare, {"state_dict": model.state_dict()})
    with pytest.raises(ValueError, match=r"bare\.pth.*config"):
        load_trained_model(bare)
    weights_only = tmp_path / "weights.pth"
    save_checkpoint(weights_only, {"config": validate({"model": TINY})})
    with pytest.raises(ValueError, match=r"weights\.pth.*'state_dict'"):
        load_trained_model(weights_only)


def test_resolve_config_path_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                               # e.g. papermill started from another folder
    assert resolve_config_path("../configs/shapes_quick.yaml") == CONFIG
    assert resolve_config_path(None) == CONFIG
    (tmp_path / "mine.yaml").write_text("model: {num_classes: 3}\n")
    assert resolve_config_path("mine.yaml") == Path("mine.yaml")
    assert resolve_config_path(tmp_path / "absent.yaml") == tmp_path / "absent.yaml"   # load_config names it
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        resolve_config_path("nope.yaml")
    # training_config resolves the same way, so notebook 02's "../configs/..." works from any folder
    assert training_config("../configs/shapes_quick.yaml", "smoke", tmp_path)["model"]["backbone"] == "tiny"


@pytest.mark.parametrize("profile", PROFILES)
def test_short_run_overlays_are_valid_config_keys(profile, tmp_path):
    cfg = training_config(CONFIG, profile, tmp_path, short_run=True)
    if profile == "smoke":                                    # a tiny dataset generated inside output_dir
        assert cfg["dataset"]["root"] == str(tmp_path.resolve() / "shapes_smoke")
    if profile == "quick":                                    # a short run: 4 epochs of 20 steps
        assert cfg["train"]["num_epochs"] * cfg["train"]["max_steps_per_epoch"] == 80


def test_load_or_train_picks_the_published_model_then_a_given_checkpoint(tiny, tmp_path):
    model, cfg = tiny
    out = tmp_path / "05_evaluate"
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        NM.load_or_train(tmp_path / "missing.pth", out, profile="smoke")
    with pytest.raises(ValueError, match="profile"):
        NM.load_or_train(None, out, profile="tiny")
    save_checkpoint(NM.published_model(out), notebook_02_state(model, cfg))
    loaded, loaded_cfg, info = NM.load_or_train(None, out, profile="smoke", device="cpu")
    assert info == {"source": "checkpoint", "checkpoint": str(NM.published_model(out)), "train_seconds": 0.0,
                    "learning_check": None, "history": notebook_02_state(model, cfg).get("history")}
    assert loaded_cfg == cfg and not loaded.training
    assert_same_model(model, loaded)
    assert not (out / "train_run").exists()                   # nothing trained

    other = tmp_path / "elsewhere.pth"
    torch.manual_seed(1)
    model2 = build_model(cfg["model"]).eval()
    save_checkpoint(other, notebook_02_state(model2, cfg))
    loaded2, _, info2 = NM.load_or_train(other, out, profile="smoke", device="cpu")
    assert info2["checkpoint"] == str(other)
    assert_same_model(model2, loaded2)
    bare = tmp_path / "released.pth"                      # the authors' layout: weights only, the config apart
    save_checkpoint(bare, {"state_dict": model2.state_dict(), "epoch": 29})
    loaded3, cfg3, info3 = NM.load_or_train(bare, out, profile="smoke", device="cpu", config=cfg)
    assert_same_model(model2, loaded3)
    assert info3["history"] is None and cfg3["model"] == cfg["model"]


def test_load_or_train_trains_the_smoke_profile_when_no_checkpoint(tmp_path):
    out = tmp_path / "alone" / "04_visualize_low_rank_factors"
    model, cfg, info = NM.load_or_train(None, out, profile="smoke", seed=3, device="cpu", config=CONFIG)
    assert info["source"] == "trained here" and info["train_seconds"] > 0 and not model.training
    assert Path(info["checkpoint"]) == out.resolve() / "train_run" / "checkpoints" / "last.pth"
    assert cfg["misc"]["seed"] == 3 and cfg["train"]["max_steps_per_epoch"] == 3
    assert Path(cfg["dataset"]["root"]) == out.resolve() / "shapes_smoke" and (out / "shapes_smoke").is_dir()
    reloaded, _ = load_trained_model(info["checkpoint"], device="cpu")    # the run's checkpoint rebuilds this model
    assert_same_model(model, reloaded)
