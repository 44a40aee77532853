"""Config loading: original sections and keys, defaults, overrides, and errors that name the key."""
from pathlib import Path

import pytest

from slrnet.config import DEFAULTS, ConfigError, load_config, merge_overrides, validate

# experiment configs; configs/profiles.yaml holds the run profiles (tests/test_profiles.py)
CONFIGS = sorted(p for p in (Path(__file__).parent.parent / "configs").glob("*.yaml") if p.name != "profiles.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert set(DEFAULTS) <= set(cfg)
    assert cfg["model"]["num_classes"] >= 2


def test_original_keys_are_accepted():
    # experiments/slrnet_voc_wss_v100x2.yaml, section by section
    original = {
        "misc": {"log_dir": "outputs", "log_freq": 100, "verbose": 2, "resume": 0,
                 "resume_checkpoint_path": "", "visualize_samples": ""},
        "train": {"lr": 0.0005, "num_epochs": 30, "pretrain_epochs": 5, "num_warmup_steps": 0,
                  "num_decay_steps": 0, "decay_rate": 1, "batch_size": 16, "num_workers": 8,
                  "weight_decay": 0.0005, "loss_coeff": [1.0, 4.0, 4.0, 1.0]},
        "dataset": {"name": "voc", "root": "data/VOC+SBD/", "crop_size": 321, "scale": [0.9, 1.0]},
        "model": {"name": "slrnet", "backbone": "resnet38", "pretrained": "x.pth", "num_classes": 21,
                  "scale_factor": 0.5, "pamr_iter": 10, "cutoff_top": 0.6, "cutoff_low": 0.2,
                  "temperature": 1.0, "pamr_dilations": [1, 2, 4, 8, 12, 24]},
        "test": {"scales": [1, 1.5, 2.0, 0.5, 0.75]},
    }
    cfg = validate(original)
    assert cfg["train"]["loss_coeff"] == [1.0, 4.0, 4.0, 1.0]
    assert cfg["model"]["use_cvlr"] is True


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        load_config(p)
    p.write_text("train:\n  num_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"did you mean 'num_epochs'"):
        load_config(p)
    p.write_text("modle:\n  backbone: tiny\n")
    with pytest.raises(ConfigError, match=r"unknown section 'modle'.*did you mean 'model'"):
        load_config(p)


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  batch_size: sixteen\n")
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected a number"):
        load_config(p)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_overrides():
    cfg = validate({})
    cfg2 = merge_overrides(cfg, ["train.num_epochs=2", "model.use_cvlr=false", "test.scales=[1, 0.5]"])
    assert cfg2["train"]["num_epochs"] == 2 and cfg2["model"]["use_cvlr"] is False
    assert cfg2["test"]["scales"] == [1, 0.5]
    assert cfg["train"]["num_epochs"] == 30          # the input is not modified
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        merge_overrides(cfg, ["train.epochs=3"])


def test_full_profile_keeps_each_recipe_schedule(tmp_path):
    from slrnet.profiles import training_config

    configs = Path(__file__).resolve().parents[1] / "configs"
    weak = training_config(configs / "shapes_quick.yaml", "full", tmp_path)
    wo_cls = training_config(configs / "shapes_semi_wo_cls_quick.yaml", "full", tmp_path)
    assert (weak["train"]["num_epochs"], weak["train"]["pretrain_epochs"]) == (30, 5)
    assert (wo_cls["train"]["num_epochs"], wo_cls["train"]["pretrain_epochs"]) == (40, 10)   # METHOD.md 4


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "num_warmup_steps", 100, "has no warm-up"),
    ("train", "num_decay_steps", 1000, "step decay is not part of the schedule"),
    ("train", "decay_rate", 0.1, "step decay is not part of the schedule"),
    ("misc", "visualize_samples", "samples.txt", "it has no effect"),
])
def test_keys_without_an_effect_are_refused_unless_inert(section, key, value, message):
    assert validate({section: {key: DEFAULTS[section][key]}})[section][key] == DEFAULTS[section][key]
    with pytest.raises(ConfigError, match=message):
        validate({section: {key: value}})
    with pytest.raises(ConfigError, match=message):                 # overrides are checked the same way
        merge_overrides(validate({}), {f"{section}.{key}": value})


@pytest.mark.parametrize("name", ["slrnet", "single_stage", "slrnet_semi"])
def test_cutoffs_are_refused_where_the_variant_does_not_read_them(name):
    with pytest.raises(ConfigError, match="fixed pseudo-label thresholds"):
        validate({"model": {"name": name, "cutoff_top": 0.5}})
    with pytest.raises(ConfigError, match="fixed pseudo-label thresholds"):
        validate({"model": {"name": name, "cutoff_low": 0.1}})


@pytest.mark.parametrize("name", ["slrnet_semi_wo_cls", "slrnet_coco_pseudo", "slrnet_lid_wide"])
def test_cutoffs_are_accepted_where_the_variant_reads_them(name):
    out = validate({"model": {"name": name, "cutoff_top": 0.5, "cutoff_low": 0.1}})
    assert (out["model"]["cutoff_top"], out["model"]["cutoff_low"]) == (0.5, 0.1)


def test_one_variant_spec_drives_the_checks_the_model_and_the_split():
    from slrnet.data.splits import build_semi_dataset
    from slrnet.models import build_model
    from slrnet.variants import VARIANTS, variant

    with pytest.raises(ConfigError, match="model.name"):
        validate({"model": {"name": "slrnet_v2"}})
    with pytest.raises(ValueError, match="unknown model 'slrnet_v2'"):
        variant("slrnet_v2")
    tiny = {"backbone": "tiny", "num_classes": 3, "decoder_channels": 8, "backbone_kwargs": {"width": 4},
            "aspp_dilations": [1, 2, 3, 4]}
    for name, spec in VARIANTS.items():
        if spec.network == "lid":
            continue                                   # its wide head is built in tests/test_lid_variant.py
        net = build_model({**tiny, "name": name})
        if spec.network == "deeplabv3plus":
            from slrnet.models.deeplab import DeepLabV3Plus
            assert isinstance(net, DeepLabV3Plus)
        else:
            assert net.variant == spec.network and net.use_cvlr == spec.use_cvlr, name
        cutoffs = {"model": {"name": name, "cutoff_top": 0.7}}
        if spec.reads_cutoffs:
            assert validate(cutoffs)["model"]["cutoff_top"] == 0.7
        else:
            with pytest.raises(ConfigError, match="cutoff_top"):
                validate(cutoffs)
    with pytest.raises(ValueError, match="not a semi-supervised model"):
        build_semi_dataset({"name": "shapes"}, "slrnet", seed=0)
