"""configs/profiles.yaml, read by slrnet.profiles: what each profile changes, in one place.

Every profile's overlays are valid for every shipped experiment config; every profile sizes the same
analyses; the one resolving function applies the layers in its documented order.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from slrnet import profiles as P
from slrnet.config import load_config

CONFIGS = sorted(p for p in (Path(__file__).resolve().parent.parent / "configs").glob("*.yaml")
                 if p.name != "profiles.yaml")


@pytest.mark.parametrize("profile", P.PROFILES)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_profile_applies_to_every_config(profile, config, tmp_path):
    cfg = P.training_config(config, profile, tmp_path)
    short = P.training_config(config, profile, tmp_path, short_run=True)
    spec = P.profile_spec(profile)
    own = load_config(config)
    for key, value in spec["config"].items():
        section, name = key.split(".")
        if own["dataset"]["name"] not in P.EMBEDDED_DATASETS and key in P.EMBEDDED_ONLY_KEYS:
            assert cfg[section][name] == own[section][name]          # a real dataset keeps its folder
        elif isinstance(value, str) and "{output_dir}" in value:
            assert cfg[section][name] == value.replace("{output_dir}", str(tmp_path.resolve())).replace(
                "{dataset}", own["dataset"]["name"])
        elif key not in (spec.get("config_by_model") or {}).get(own["model"]["name"], {}):
            assert cfg[section][name] == value, key
    for key, value in (spec.get("short_run") or {}).items():
        section, name = key.split(".")
        assert short[section][name] == value
    assert cfg["misc"]["log_dir"] == str(tmp_path.resolve())


def test_every_profile_sizes_the_same_analyses():
    names = {p: set(P.profile_spec(p)["analysis"]) for p in P.PROFILES}
    assert len({frozenset(v) for v in names.values()}) == 1, names
    for p in P.PROFILES:
        assert P.cell_timeout(p) > 0
        for analysis, settings in P.profile_spec(p)["analysis"].items():
            assert settings.keys() - {"config"} == P.profile_spec("quick")["analysis"][analysis].keys() - {"config"}
    assert len(P.analysis_settings("quick", "label_efficiency")["seed_study_fractions"]) >= 3   # a curve
    with pytest.raises(KeyError, match="nothing"):
        P.analysis_settings("quick", "nothing")
    with pytest.raises(ValueError, match="profile"):
        P.analysis_settings("fast", "factors")


def test_the_layers_apply_in_order(tmp_path):
    config = CONFIGS[[p.name for p in CONFIGS].index("shapes_semi_wo_cls_quick.yaml")]
    full = P.training_config(config, "full", tmp_path)
    assert (full["train"]["num_epochs"], full["train"]["pretrain_epochs"]) == (40, 10)   # the model's overlay wins
    weak = P.training_config(CONFIGS[[p.name for p in CONFIGS].index("shapes_quick.yaml")], "full", tmp_path)
    assert (weak["train"]["num_epochs"], weak["train"]["pretrain_epochs"]) == (30, 5)
    # overrides come last; None keeps the value below it
    over = P.training_config(config, "smoke", tmp_path, overrides={"train.num_epochs": 7, "train.lr": None})
    assert over["train"]["num_epochs"] == 7 and over["train"]["lr"] == load_config(config)["train"]["lr"]
    short = P.training_config(config, "quick", tmp_path, short_run=True, overrides={"train.max_steps_per_epoch": 2})
    assert short["train"]["num_epochs"] == 4 and short["train"]["max_steps_per_epoch"] == 2


def test_the_profiles_dataset_root(tmp_path):
    root = P.dataset_root("smoke", tmp_path)
    cfg = P.training_config(None, "smoke", tmp_path)
    assert root == Path(cfg["dataset"]["root"]) and (root / "ImageSets" / "Segmentation" / "val.txt").is_file()
    smoke = P.profile_spec("smoke")["config"]["dataset.generate"]
    assert len((root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()) == smoke["num_train"]
    assert P.dataset_root("quick", tmp_path, data_root=tmp_path / "mine") == tmp_path / "mine"


def test_a_broken_profiles_file_is_named(tmp_path, monkeypatch):
    bad = tmp_path / "profiles.yaml"
    bad.write_text("smoke: {config: {}}\nquick: {config: {}, analysis: {}}\n")
    monkeypatch.setattr(P, "profiles_file", lambda: bad)
    with pytest.raises(ValueError, match="profiles.yaml: expected the profiles"):
        P.profile_spec("smoke")


def test_every_embedded_dataset_has_its_generator_and_configs(tmp_path):
    from slrnet.data.build import EMBEDDED, GENERATORS

    assert set(P.EMBEDDED_DATASETS) == set(EMBEDDED) == set(GENERATORS)
    for dataset in P.EMBEDDED_DATASETS:
        for experiment in ("quick", "semi_w_cls_quick", "semi_wo_cls_quick", "two_stage_quick"):
            assert P.dataset_config(dataset, experiment).is_file()
        cfg = P.training_config(P.dataset_config(dataset), "smoke", tmp_path)
        assert cfg["dataset"]["name"] == dataset and cfg["dataset"]["root"] == str(tmp_path.resolve() / f"{dataset}_smoke")
    with pytest.raises(ValueError, match="expected one of the embedded datasets"):
        P.dataset_config("voc")
    with pytest.raises(FileNotFoundError, match="photos_nothing.yaml not found"):
        P.dataset_config("photos", "nothing")
