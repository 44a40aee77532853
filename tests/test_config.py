"""Config loading: original sections and keys, defaults, overrides, and errors that name the key."""
from pathlib import Path

import pytest

import yaml

from slrnet.config import (DEFAULTS, ConfigError, load_config, merge_overrides, read_config_file, save_config,
                           validate)

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


# ---------------------------------------------------------------- configs that inherit (_base_)
BASE = """\
train:
  lr: 0.03
  num_epochs: 12
  loss_coeff: [1.0, 4.0, 4.0, 1.0]
  lr_multipliers: [1.0, 1.0, 1.0, 1.0]
dataset:
  name: 'shapes'
  crop_size: 96
model:
  backbone: 'tiny'
  num_classes: 7
  backbone_kwargs: {width: 16, frozen: true}
test:
  scales: [1.0, 0.75, 1.25]
"""


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_child_states_only_what_differs(tmp_path):
    _write(tmp_path / "base.yaml", BASE)
    child = _write(tmp_path / "variants" / "child.yaml", (
        "_base_: ../base.yaml            # relative to this file's folder\n"
        "train:\n  lr: 0.05\n  loss_coeff: [0.5, 2.0, 2.0, 0.5]\n  lr_multipliers: null\n"
        "model:\n  num_classes: 11\n  backbone_kwargs: {width: 8}\n"
        "test:\n  scales: [1.0]\n"
        "misc:\n"))                                                # an empty section changes nothing
    grandchild = _write(tmp_path / "variants" / "grandchild.yaml", "_base_: child.yaml\ntrain:\n  num_epochs: 3\n")
    cfg = load_config(child)
    assert cfg["train"]["lr"] == 0.05                               # the child's value replaces the base's
    assert cfg["train"]["num_epochs"] == 12                         # a key it does not set keeps the base's
    assert cfg["dataset"]["name"] == "shapes" and cfg["dataset"]["crop_size"] == 96
    assert cfg["train"]["loss_coeff"] == [0.5, 2.0, 2.0, 0.5]       # a list replaces a list wholesale ...
    assert cfg["test"]["scales"] == [1.0]                           # ... also a shorter one
    assert cfg["train"]["lr_multipliers"] is None                   # null sets the key to null
    assert cfg["model"]["backbone_kwargs"] == {"width": 8}          # a mapping value is replaced whole too
    assert cfg["model"]["num_classes"] == 11 and cfg["model"]["backbone"] == "tiny"
    assert cfg["misc"] == DEFAULTS["misc"]
    deeper = load_config(grandchild)                                # a base may have its own base
    assert deeper["train"]["num_epochs"] == 3 and deeper["train"]["lr"] == 0.05
    assert deeper["model"]["backbone_kwargs"] == {"width": 8}
    raw = read_config_file(grandchild)                              # resolved, not validated: no defaults filled
    assert "_base_" not in raw and not raw.get("misc")
    assert raw["train"] == {"lr": 0.05, "num_epochs": 3, "loss_coeff": [0.5, 2.0, 2.0, 0.5], "lr_multipliers": None}
    assert yaml.safe_load((tmp_path / "base.yaml").read_text())["train"]["lr"] == 0.03   # files are not modified


def test_the_resolved_config_is_validated_as_one_file(tmp_path):
    _write(tmp_path / "base.yaml", BASE)
    with pytest.raises(ConfigError, match=r"child\.yaml: train\.lr = -1"):
        load_config(_write(tmp_path / "child.yaml", "_base_: base.yaml\ntrain:\n  lr: -1\n"))
    # a key that the child's model does not read is refused, whichever file set it
    with pytest.raises(ConfigError, match=r"model\.scale_factor.*deeplabv3plus does not read it"):
        load_config(_write(tmp_path / "stage2.yaml", "_base_: base.yaml\nmodel:\n  scale_factor: 0.75\n"
                                                     "  name: deeplabv3plus\n"))
    # a typo is named in the file that has it
    _write(tmp_path / "typo.yaml", "train:\n  num_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown key 'train\.num_epoch'.*num_epochs"):
        load_config(_write(tmp_path / "on_typo.yaml", "_base_: typo.yaml\n"))
    with pytest.raises(ConfigError, match=r"list\.yaml: _base_ = \['base\.yaml'\]; expected the base config's file"):
        load_config(_write(tmp_path / "list.yaml", "_base_: [base.yaml]\n"))
    with pytest.raises(ConfigError, match="_base_"):                # validate takes resolved configs only
        validate({"_base_": "base.yaml"})


def _one_line_error(path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_a_missing_base_is_one_line_naming_the_file(tmp_path):
    child = _write(tmp_path / "child.yaml", "_base_: nope.yaml\ntrain:\n  lr: 0.1\n")
    message = _one_line_error(child)
    assert message.startswith(f"{child}: ") and "'nope.yaml' not found" in message
    middle = _write(tmp_path / "sub" / "middle.yaml", "_base_: gone.yaml\n")   # deeper in the chain: names that file
    message = _one_line_error(_write(tmp_path / "top.yaml", "_base_: sub/middle.yaml\n"))
    assert message.startswith(f"{middle}: ") and "'gone.yaml' not found" in message


def test_a_cycle_is_one_line_naming_the_file(tmp_path):
    a = _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "b.yaml", "_base_: sub/../a.yaml\n")         # the same file by another path
    message = _one_line_error(a)
    assert message.startswith(f"{tmp_path / 'b.yaml'}: ") and "cycle: a.yaml -> b.yaml -> a.yaml" in message
    me = _write(tmp_path / "me.yaml", "_base_: me.yaml\n")
    assert "cycle: me.yaml -> me.yaml" in _one_line_error(me)


def test_the_saved_config_is_resolved_and_standalone(tmp_path):
    _write(tmp_path / "base.yaml", BASE)
    child = _write(tmp_path / "child.yaml", "_base_: base.yaml\ntrain:\n  lr: 0.05\n")
    cfg = load_config(child)
    assert "_base_" not in cfg
    save_config(cfg, tmp_path / "run" / "config.yaml")              # as Trainer writes <run>/config.yaml
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert "_base_" not in saved and set(saved) == set(DEFAULTS)
    assert saved["train"]["lr"] == 0.05 and saved["train"]["num_epochs"] == 12   # the base's keys are written out
    again = load_config(tmp_path / "run" / "config.yaml")
    assert {k: v for k, v in again.items() if k != "_source"} == {k: v for k, v in cfg.items() if k != "_source"}


# keys a child may state at its base's value: the only variant that reads them shows them
STATED_FOR_CLARITY = {("model", "bg_pow")}


@pytest.mark.parametrize("path", [p for p in CONFIGS if "_base_" in yaml.safe_load(p.read_text())],
                         ids=lambda p: p.name)
def test_shipped_children_set_only_what_differs(path):
    """Every key a shipped child sets changes its base's resolved value (no restated values)."""
    child = yaml.safe_load(path.read_text())
    base = load_config(path.parent / child.pop("_base_"))
    for section, values in child.items():
        for key, value in (values or {}).items():
            assert value != base[section][key] or (section, key) in STATED_FOR_CLARITY, \
                f"{path.name}: {section}.{key} restates its base's value {value!r}"
