"""The label-efficiency study of notebook 03 (slrnet.analysis.label_efficiency): configs per setting (one budget for
all), training sets, the leak check, the plot, and tiny training runs."""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from slrnet.analysis import label_efficiency as S
from slrnet.viz import label_efficiency as V
from slrnet.config import load_config
from slrnet.data import SemiSupervisedSplit, VOCSegmentation, ensure_default_dataset, select_labelled

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_DATA = {"num_train": 20, "num_val": 3, "image_size": 48}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return ensure_default_dataset(tmp_path_factory.mktemp("data") / "shapes", **TINY_DATA)


def configs(profile, tmp_path, fraction=0.1, **kw):
    return {s: S.study_config(s, fraction, profile, tmp_path, seed=3, device="cpu", **kw) for s in S.SETTINGS}


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_study_configs_per_setting(profile, tmp_path, tiny_root):
    # the labelled-only baseline's batch is settled on the split: quick and full read the tiny dataset's lists
    cfgs = configs(profile, tmp_path, fraction=0.1, data_root=None if profile == "smoke" else tiny_root)
    models = {s: c["model"]["name"] for s, c in cfgs.items()}
    assert models == {"weak": "slrnet", "semi_w_cls": "slrnet_semi", "semi_wo_cls": "slrnet_semi_wo_cls",
                      "labelled_only": "slrnet_semi"}
    # the weak setting never sees pixel labels; the others draw the same 10 % with the same seed
    assert cfgs["weak"]["dataset"]["labelled_ratio"] is None and cfgs["weak"]["dataset"]["labelled_list"] is None
    for s in ("semi_w_cls", "semi_wo_cls", "labelled_only"):
        assert cfgs[s]["dataset"]["labelled_ratio"] == 0.1 and cfgs[s]["dataset"]["labelled_list"] is None
    assert cfgs["semi_w_cls"]["dataset"]["oversample_rate"] == 3
    assert cfgs["semi_wo_cls"]["dataset"]["oversample_rate"] == 7
    # the settings with pixel labels share the loss weights of the variant with image labels, so none takes larger
    # steps than another; the wo_cls config keeps its own recipe's for training it alone
    for s in ("semi_w_cls", "semi_wo_cls", "labelled_only"):
        assert cfgs[s]["train"]["loss_coeff"] == [0.5, 2, 2, 0.5]
    assert cfgs["weak"]["train"]["loss_coeff"] == [1, 4, 4, 1]
    assert load_config(CONFIGS / "shapes_semi_wo_cls_quick.yaml")["train"]["loss_coeff"] == [1, 4, 4, 1]
    # an override of the loss weights reaches every setting with pixel labels alike
    over = configs(profile, tmp_path, fraction=0.1, overrides={"train.loss_coeff": [1, 2, 3, 4]},
                   data_root=None if profile == "smoke" else tiny_root)
    assert {s: c["train"]["loss_coeff"] for s, c in over.items()} == {
        "weak": [1, 2, 3, 4], "semi_w_cls": [1, 2, 3, 4], "semi_wo_cls": [1, 2, 3, 4], "labelled_only": [1, 2, 3, 4]}
    assert cfgs["semi_wo_cls"]["model"]["cutoff_top"] == 0.8 and cfgs["semi_wo_cls"]["model"]["cutoff_low"] == 0.6
    # one budget for every setting: the same epochs (pretraining included), steps per epoch and validation
    keys = ("num_epochs", "pretrain_epochs", "max_steps_per_epoch", "val_every", "val_max_images")
    schedules = {s: tuple(c["train"][k] for k in keys) for s, c in cfgs.items()}
    assert len(set(schedules.values())) == 1, schedules
    batches = {s: c["train"]["batch_size"] for s, c in cfgs.items() if s != "labelled_only"}
    assert len(set(batches.values())) == 1
    images = {"smoke": 48, "quick": 20, "full": 20}[profile]          # quick and full read the tiny dataset
    batch = cfgs["weak"]["train"]["batch_size"]
    steps = {"smoke": min(images // batch, 3), "quick": min(images // batch, 60), "full": images // batch}[profile]
    assert cfgs["weak"]["train"]["max_steps_per_epoch"] == steps
    epochs = (cfgs["weak"]["train"]["num_epochs"], cfgs["weak"]["train"]["pretrain_epochs"])
    assert epochs == {"smoke": (2, 0), "quick": (8, 1), "full": (30, 5)}[profile]
    # the baseline: each step as many pixel-labelled images as the wo_cls variant's batches hold on average
    wo = S.study_train_set(cfgs["semi_wo_cls"], "semi_wo_cls")
    batch = cfgs["semi_wo_cls"]["train"]["batch_size"]
    assert batch * wo.num_labelled_items / len(wo) <= cfgs["labelled_only"]["train"]["batch_size"] < batch
    assert cfgs["labelled_only"]["train"]["batch_size"] < batch * wo.num_labelled_items / len(wo) + 1
    assert all(c["misc"]["seed"] == 3 and c["misc"]["device"] == "cpu" for c in cfgs.values())
    assert all(c["misc"]["log_dir"] == str(tmp_path.resolve()) for c in cfgs.values())


def test_study_rejects_bad_settings_and_fractions(tmp_path):
    with pytest.raises(ValueError, match="setting must be one of"):
        S.study_config("fully", 0.1, "smoke", tmp_path)
    for bad in (0, 1.5, "0.1", None, True):
        with pytest.raises(ValueError, match="fractions"):
            S.study_config("semi_w_cls", bad, "smoke", tmp_path)
    assert S.study_config("weak", None, "smoke", tmp_path)["model"]["name"] == "slrnet"   # no fraction needed
    with pytest.raises(ValueError, match="profile"):
        S.default_fractions("fast")
    assert S.default_fractions("quick") == [0.138] and len(S.default_fractions("full")) == 4
    assert S.seed_study_fractions("quick") == [0.05, 0.138, 0.5]          # the curve: the several-seed study's
    assert set(S.default_fractions("quick")) <= set(S.seed_study_fractions("quick"))


def test_semi_quick_configs_mirror_the_weak_one():
    """The study compares settings, not models: network, optimiser and data must match shapes_quick.yaml."""
    weak = load_config(CONFIGS / "shapes_quick.yaml")
    for name in ("shapes_semi_w_cls_quick", "shapes_semi_wo_cls_quick"):
        semi = load_config(CONFIGS / f"{name}.yaml")
        for key in ("backbone", "num_classes", "decoder_channels", "backbone_kwargs", "aspp_dilations", "pamr_iter",
                    "pamr_dilations", "scale_factor", "temperature", "pretrained"):
            assert semi["model"][key] == weak["model"][key], f"{name}: model.{key} differs from shapes_quick.yaml"
        for key in ("lr", "weight_decay", "batch_size", "lr_multipliers", "momentum"):
            assert semi["train"][key] == weak["train"][key], f"{name}: train.{key} differs from shapes_quick.yaml"
        for key in ("name", "root", "crop_size", "scale", "generate"):
            assert semi["dataset"][key] == weak["dataset"][key], f"{name}: dataset.{key} differs"
        # the configs' own fraction is one of those notebook 03 trains in the quick profile
        assert semi["dataset"]["labelled_ratio"] in S.default_fractions("quick") and semi["test"]["bg_pow"] == 1


def test_semi_quick_schedules_keep_the_voc_recipes_shares():
    """METHOD.md section 4: with image labels 30 epochs, 5 of them pretraining; without, 40 and 10."""
    t_w = load_config(CONFIGS / "shapes_semi_w_cls_quick.yaml")["train"]
    t_wo = load_config(CONFIGS / "shapes_semi_wo_cls_quick.yaml")["train"]
    assert t_w["pretrain_epochs"] / t_w["num_epochs"] == pytest.approx(5 / 30)
    assert t_wo["pretrain_epochs"] / t_wo["num_epochs"] == pytest.approx(10 / 40)
    steps_w, steps_wo = (t["num_epochs"] * t["max_steps_per_epoch"] for t in (t_w, t_wo))
    assert steps_wo / steps_w == pytest.approx(40 / 30)
    # both validate at the middle and the end of training
    assert (t_w["num_epochs"] / t_w["val_every"], t_wo["num_epochs"] / t_wo["val_every"]) == (2, 2)


def test_training_sets_per_setting_and_no_leak(tiny_root, tmp_path):
    cfgs = configs("smoke", tmp_path, fraction=0.25, data_root=tiny_root)
    sets = {s: S.study_train_set(cfgs[s], s) for s in S.SETTINGS}
    assert isinstance(sets["weak"], VOCSegmentation) and len(sets["weak"]) == 20     # plain: image labels only
    expected = select_labelled(sets["weak"], labelled_ratio=0.25, seed=3)
    assert len(expected) == 5
    w, wo, only = sets["semi_w_cls"], sets["semi_wo_cls"], sets["labelled_only"]
    assert w.labelled_indices == wo.labelled_indices == only.labelled_indices == expected
    assert (w.unlabelled_mode, wo.unlabelled_mode, only.unlabelled_mode) == ("image_labels", "hidden", "drop")
    assert len(w) == 20 + 5 * 2 and len(wo) == 20 + 5 * 6
    # labelled-only: only the labelled images, repeated to about one full epoch (20 items), 3 steps of 3: the
    # wo_cls variant's batches of 4 hold 4 * 35 / 50 = 2.8 pixel-labelled images on average
    assert set(only.index) == set(expected) and len(only) == 20 and only.oversample_rate == 4
    assert cfgs["labelled_only"]["dataset"]["oversample_rate"] == 4
    assert cfgs["labelled_only"]["train"]["max_steps_per_epoch"] == 3
    assert cfgs["labelled_only"]["train"]["batch_size"] == 3 and cfgs["semi_wo_cls"]["train"]["batch_size"] == 4
    assert all(only[i]["has_mask"] for i in range(len(only)))
    for split in (w, wo):
        report = S.check_split(split)
        assert report["leaks"] == 0 and report["checked_unlabelled"] == 15 and report["hidden_labelled_pixels"] > 0
    assert S.check_split(wo, max_unlabelled=4)["checked_unlabelled"] == 4
    import matplotlib.pyplot as plt

    fig = V.plot_split_examples({"with": w, "without": wo, "labelled only": only}, per_split=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "pixel labels" and titles[2] == "image labels" and titles[6] == "no labels"
    assert not fig.axes[10].axison                                  # labelled only: nothing unlabelled to show
    # a mask panel without pixel labels says so instead of drawing a flat all-void box
    assert not fig.axes[3].images and "no pixel" in fig.axes[3].texts[0].get_text()
    assert fig.axes[1].images and not fig.axes[1].texts             # the pixel-labelled item's mask is drawn
    plt.close(fig)


@pytest.mark.parametrize("profile, batch_size", [("quick", 4), ("full", 4), ("full", 16)])
def test_every_setting_trains_the_same_number_of_steps(tiny_root, tmp_path, profile, batch_size):
    """Whether epochs are capped (quick) or whole (full), every setting's epochs have the same number of steps:
    one pass over the training images; the labelled-only baseline's oversampling fills them."""
    cfgs = configs(profile, tmp_path, fraction=0.25, data_root=tiny_root, overrides={"train.batch_size": batch_size})
    sets = {s: S.study_train_set(cfgs[s], s) for s in S.SETTINGS}

    def steps_per_epoch(cfg, split):
        n, cap = len(split) // cfg["train"]["batch_size"], cfg["train"]["max_steps_per_epoch"]
        return min(n, cap) if cap else n

    assert len(sets["semi_wo_cls"]) == 5 * 7 + 15 and len(sets["weak"]) == 20
    expected = 20 // batch_size
    assert {s: steps_per_epoch(cfgs[s], sets[s]) for s in S.SETTINGS} == {s: expected for s in S.SETTINGS}
    assert len({c["train"]["num_epochs"] for c in cfgs.values()}) == 1
    # 35 of the wo_cls variant's 50 items are pixel-labelled: its batches of 4 hold 2.8 of them on average, of 16 11.2
    assert cfgs["labelled_only"]["train"]["batch_size"] == {4: 3, 16: 12}[batch_size]
    again = S.study_train_set(cfgs["labelled_only"], "labelled_only")       # built again: the same
    assert len(again) == len(sets["labelled_only"]) and steps_per_epoch(cfgs["labelled_only"], again) == expected
    assert all(sets["labelled_only"][i]["has_mask"] for i in range(len(sets["labelled_only"])))


def test_check_split_catches_a_leak(tiny_root):
    class Leaky(SemiSupervisedSplit):
        def __getitem__(self, item):
            return {**self.dataset[self.index[item]], "has_mask": False, "has_labels": True}

    base = VOCSegmentation(tiny_root, "train")
    with pytest.raises(AssertionError, match="leaked"):
        S.check_split(Leaky(base, [0, 1]))
    with pytest.raises(TypeError, match="SemiSupervisedSplit"):
        S.check_split(base)


def fake_rows():
    rows = [{"setting": "weak", "fraction": None, "val_miou": 0.3}]
    for s, base in (("semi_w_cls", 0.5), ("semi_wo_cls", 0.45), ("labelled_only", 0.35)):
        rows += [{"setting": s, "fraction": f, "val_miou": base + f} for f in (0.02, 0.1)]
    return rows


def test_plot_label_efficiency(tmp_path):
    import matplotlib.pyplot as plt

    fig = V.plot_label_efficiency(fake_rows())
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith(S.SETTING_LABELS["weak"]) for label in labels)       # horizontal line
    curves = {line.get_label(): line for line in ax.get_lines()}
    assert list(curves[S.SETTING_LABELS["semi_w_cls"]].get_xdata()) == [2.0, 10.0]
    assert list(curves[S.SETTING_LABELS["labelled_only"]].get_ydata()) == pytest.approx([0.37, 0.45])
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == [2.0, 10.0] and [t.get_text() for t in ax.get_xticklabels()] == ["2", "10"]
    assert not ax.xaxis.get_minor_ticks()                   # no automatic log ticks beside the fractions
    assert not ax.collections                               # no error bars without a std
    fig.savefig(tmp_path / "le.png")
    assert (tmp_path / "le.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)
    fig, ax = plt.subplots()
    one = [r for r in fake_rows() if r["fraction"] in (None, 0.1)]
    assert V.plot_label_efficiency(one, ax=ax) is fig and ax.get_xscale() == "linear"
    plt.close(fig)
    # the value labels of the two semi variants: the higher value's above, whichever variant it is
    for w, wo in ((0.6, 0.5), (0.5, 0.6)):
        fig = V.plot_label_efficiency([{"setting": "semi_w_cls", "fraction": 0.1, "val_miou": w},
                                       {"setting": "semi_wo_cls", "fraction": 0.1, "val_miou": wo}])
        offsets = {t.get_text(): t.xyann[1] for t in fig.axes[0].texts}
        assert offsets["0.600"] > 0 > offsets["0.500"]
        plt.close(fig)
    # three at one fraction: highest above, lowest below, the middle one beside its point
    fig = V.plot_label_efficiency([{"setting": s, "fraction": 0.1, "val_miou": v}
                                   for s, v in (("semi_w_cls", 0.7), ("semi_wo_cls", 0.6), ("labelled_only", 0.65))])
    placed = {t.get_text(): t.xyann for t in fig.axes[0].texts}
    assert placed["0.700"][1] > 0 > placed["0.600"][1] and placed["0.650"][0] > 0 == placed["0.700"][0]
    plt.close(fig)
    with pytest.raises(ValueError, match="no rows"):
        V.plot_label_efficiency([])
    # several-seed means: error bars of one std on the curves, a band around the weak line
    fig = V.plot_label_efficiency([{**r, "std": 0.02} for r in fake_rows()], title="over seeds")
    ax = fig.axes[0]
    assert ax.get_title() == "over seeds" and len(ax.patches) == 1          # the weak band
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(bars) == 3 and all(np.allclose(np.diff(seg, axis=0)[:, 1], 0.04) for c in bars
                                   for seg in c.lines[2][0].get_segments())
    plt.close(fig)


def test_summary_metrics_margins_and_row_order():
    rows = fake_rows()
    summary = S.summary_metrics(rows, 0.1)
    curves = summary.pop("curves")
    assert summary == {"headline_fraction": 0.1, "weak_val_miou": 0.3, "semi_w_cls_val_miou": pytest.approx(0.6),
                       "semi_wo_cls_val_miou": pytest.approx(0.55), "labelled_only_val_miou": pytest.approx(0.45)}
    assert curves["weak"] == {"null": 0.3} and curves["semi_w_cls"] == pytest.approx({"0.02": 0.52, "0.1": 0.6})
    assert S.summary_metrics(rows, 0.05)["semi_w_cls_val_miou"] is None
    margins = {(m["setting"], m["fraction"]): m["margin"] for m in S.margins_over_labelled_only(rows)}
    assert margins == pytest.approx({("semi_w_cls", 0.02): 0.15, ("semi_w_cls", 0.1): 0.15,
                                     ("semi_wo_cls", 0.02): 0.1, ("semi_wo_cls", 0.1): 0.1})
    runs = {(r["setting"], r["fraction"]): S.StudyRun(r["setting"], r["fraction"], r) for r in reversed(rows)}
    ordered = S.study_rows(runs)
    assert [(r["setting"], r["fraction"]) for r in ordered][:3] == [("weak", None), ("semi_w_cls", 0.02),
                                                                   ("semi_w_cls", 0.1)]


def test_seed_summary_pairs_each_seed_with_its_baseline():
    rows = [{"setting": s, "fraction": 0.1, "seed": seed, "val_miou": v}
            for seed, (w, alone) in enumerate(((0.6, 0.5), (0.4, 0.45), (0.7, 0.5)))
            for s, v in (("semi_w_cls", w), ("labelled_only", alone))]
    rows.append({"setting": "weak", "fraction": None, "seed": 0, "val_miou": 0.3})
    summary = {(e["setting"], e["fraction"]): e for e in S.seed_summary(rows)}
    w = summary["semi_w_cls", 0.1]
    assert w["seeds"] == 3 and w["mean"] == pytest.approx(0.5667, abs=1e-4) and w["std"] == pytest.approx(0.1528, abs=1e-4)
    assert w["wins"] == 2 and w["paired"] == 3 and w["mean_margin"] == pytest.approx((0.1 - 0.05 + 0.2) / 3)
    assert summary["weak", None]["std"] is None and "wins" not in summary["labelled_only", 0.1]
    assert [e["setting"] for e in S.seed_summary(rows)] == ["weak", "semi_w_cls", "labelled_only"]


def test_budget_table_reads_the_configs(tmp_path):
    cfgs = configs("smoke", tmp_path)
    table = {r["setting"]: r for r in S.budget_table(cfgs)}
    for s, c in cfgs.items():
        assert table[s]["steps"] == c["train"]["num_epochs"] * c["train"]["max_steps_per_epoch"]
        assert table[s]["batch_size"] == c["train"]["batch_size"] and table[s]["loss_coeff"] == c["train"]["loss_coeff"]
    assert len({r["steps"] for r in table.values()}) == 1


def test_the_seed_study_script_writes_its_results(tmp_path, monkeypatch):
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "experiments" / "label_efficiency_seeds.py"
    spec = importlib.util.spec_from_file_location("label_efficiency_seeds", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.parse_seeds(["0-2", "5"]) == [0, 1, 2, 5]
    calls = []

    def fake_run_study(fractions, **kw):
        calls.append((tuple(fractions), kw["seed"], kw["profile"]))
        return {(s, None if s == "weak" else f): S.StudyRun(s, None if s == "weak" else f,
                                                           {"setting": s, "fraction": None if s == "weak" else f,
                                                            "val_miou": 0.5 + kw["seed"] / 10})
                for s in S.SETTINGS for f in fractions}

    monkeypatch.setattr(script.study, "run_study", fake_run_study)
    out = tmp_path / "seeds.json"
    assert script.main(["--seeds", "0-1", "--profile", "smoke", "--fractions", "0.1", "--output", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert calls == [((0.1,), 0, "smoke"), ((0.1,), 1, "smoke")]
    assert saved["seeds"] == [0, 1] and len(saved["rows"]) == 8 and "label_efficiency_seeds.py" in saved["command"]
    assert {r["seed"] for r in saved["rows"]} == {0, 1}


def test_smoke_training_of_the_labelled_only_baseline(tiny_root, tmp_path, monkeypatch):
    torch.manual_seed(0)
    run = S.train_setting("labelled_only", 0.25, "smoke", tmp_path, data_root=tiny_root, device="cpu", seed=1)
    row = run.row
    assert row["setting"] == "labelled_only" and row["unlabelled"] == "drop" and row["num_labelled"] == 5
    assert row["steps"] == 6 and row["epochs"] == 2 and 0.0 <= row["val_miou"] <= 1.0 and row["source"] == "trained"
    assert row["threads"] == torch.get_num_threads()
    # smoke batches of 4; the wo_cls split's hold 4 * 35 / 50 = 2.8 pixel-labelled images on average
    assert row["batch_size"] == run.cfg["train"]["batch_size"] == 3
    base = VOCSegmentation(tiny_root, "train")
    assert run.labelled_indices == select_labelled(base, labelled_ratio=0.25, seed=1)
    assert len(run.history) == 2 and run.history[-1]["val_miou"] == row["val_miou"] and not run.model.training
    assert (tmp_path / "runs" / "labelled_only_0.25" / "history.json").is_file()
    val_set = VOCSegmentation(tiny_root, "val")
    fig = V.plot_setting_predictions({"labelled only": run}, val_set, [0, 1])
    assert len(fig.axes) == 2 * 3
    # run_study trains only what is missing
    monkeypatch.setattr(S, "train_setting", lambda *a, **k: pytest.fail(f"unexpected training {a}"))
    done = {("labelled_only", 0.25): run, ("weak", None): S.StudyRun("weak", None, {"setting": "weak"})}
    assert S.run_study([0.25], ("weak", "labelled_only"), profile="smoke", output_dir=tmp_path, done=done) == done
    with pytest.raises(ValueError, match="holds no model"):
        V.predict_index_map(done[("weak", None)], val_set[0]["image"])


@pytest.mark.slow
def test_runs_trained_side_by_side_equal_runs_trained_one_after_another(tiny_root, tmp_path):
    """Worker processes (one thread each) give the rows, histories and weights of in-process training
    with one thread, and the model read back from the worker's checkpoint predicts like the one trained here."""
    options = dict(profile="smoke", data_root=tiny_root, device="cpu", seed=2)
    settings = ("semi_w_cls", "semi_wo_cls")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = S.run_study([0.25], settings, output_dir=tmp_path / "one", workers=1, **options)
        torch.set_num_threads(2)                  # two workers share two threads: one each, as above
        side = S.run_study([0.25], settings, output_dir=tmp_path / "two", workers=2, **options)
    finally:
        torch.set_num_threads(threads)
    assert sorted(side) == sorted(alone) == [("semi_w_cls", 0.25), ("semi_wo_cls", 0.25)]
    image = VOCSegmentation(tiny_root, "val")[0]["image"]
    for key, run in side.items():
        ref = alone[key]
        assert run.row["threads"] == ref.row["threads"] == 1
        drop = ("train_seconds",)
        assert {k: v for k, v in run.row.items() if k not in drop} == {k: v for k, v in ref.row.items() if k not in drop}
        assert [h["train_loss"] for h in run.history] == [h["train_loss"] for h in ref.history]
        assert run.labelled_indices == ref.labelled_indices and run.cfg["model"] == ref.cfg["model"]
        for (name, a), b in zip(run.model.state_dict().items(), ref.model.state_dict().values()):
            assert torch.equal(a, b), name
        assert (V.predict_index_map(run, image) == V.predict_index_map(ref, image)).all()


def test_run_study_checks_workers(tmp_path):
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ValueError, match="workers"):
            S.run_study([0.1], ("semi_w_cls", "semi_wo_cls"), profile="smoke", output_dir=tmp_path, workers=bad)
    assert S.default_workers(0, "cpu") == S.default_workers(1, "cpu") == 1


@pytest.mark.parametrize("pending, expected", [(2, 2), (3, 3), (4, 2), (5, 2), (10, 2)])
def test_default_workers_finish_equal_runs_first(pending, expected, monkeypatch):
    """On 2 threads a round of w runs takes max(1, w / 2) run-times: 4 runs two by two (2) beat three then one (3);
    a tie goes to fewer processes (5 runs: 2 + 2 + 1 or 3 + 2, both 3)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert S.default_workers(pending, "cpu") == expected
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert S.default_workers(pending, "cpu") == 1


def test_worker_log_lines_name_their_run():
    import io

    out = io.StringIO()
    stream = S._LinePrefix(out, "[semi_w_cls_0.1] ")
    stream.write("epoch 1: loss 0.5")
    stream.write(" val mIoU 0.3\nepoch 2")
    stream.write(": done\n\n")
    assert out.getvalue() == "[semi_w_cls_0.1] epoch 1: loss 0.5 val mIoU 0.3\n[semi_w_cls_0.1] epoch 2: done\n[semi_w_cls_0.1] \n"


def test_learning_and_seed_readings():
    rows = [{"setting": "weak", "fraction": None, "learned": True, "learning_findings": [], "steps": 480,
             "batch_size": 16, "val_miou": 0.69},
            {"setting": "semi_w_cls", "fraction": 0.138, "learned": False, "steps": 480, "batch_size": 16,
             "learning_findings": ["the val mIoU is 0.143, what predicting background everywhere scores"],
             "val_miou": 0.14}]
    assert S.learning_reading(rows[:1]).startswith("all 1 runs passed")
    text = S.learning_reading(rows)
    assert "1 of 2 runs did NOT learn" in text and "semi_w_cls_0.138: the val mIoU is 0.143" in text

    seed_rows = [{**r, "seed": seed, "val_miou": r["val_miou"] + 0.01 * seed} for seed in (0, 1) for r in rows]
    seed_rows += [{"setting": "labelled_only", "fraction": 0.138, "seed": seed, "val_miou": v, "steps": 480,
                   "batch_size": 5} for seed, v in ((0, 0.10), (1, 0.30))]
    assert "with this notebook's budget" in S.seed_study_budget_reading(seed_rows, rows)
    shorter = [{**r, "steps": 144} for r in seed_rows]
    assert "another budget ([144] SGD steps" in S.seed_study_budget_reading(shorter, rows)
    summary = S.seed_summary(seed_rows)
    reading = S.seed_reading(summary)
    # semi 0.14 / 0.15 against labelled only 0.10 / 0.30: margins +0.04 and -0.15, spread of labelled only 0.141
    assert reading == ("semi + image labels at 13.8 %: -0.055 over labelled only on average, within the seed "
                       "spread (0.141); it won at 1 of 2 seeds")
    one_seed = S.seed_reading(S.seed_summary([r for r in seed_rows if r["seed"] == 0]))
    assert one_seed.endswith("+0.040 over labelled only on average, one seed, so no spread to compare it with; it "
                             "won at 1 of 1 seeds")
    curve = S.summary_rows(summary)
    assert {(r["setting"], r["fraction"]) for r in curve} == {("weak", None), ("semi_w_cls", 0.138),
                                                              ("labelled_only", 0.138)}
    assert all(r["std"] is not None for r in curve)


def test_convergence_reading_says_which_runs_were_still_rising():
    def run(setting, fraction, vals):
        return S.StudyRun(setting, fraction, {}, history=[{"epoch": 3 + 4 * i, "val_miou": v} for i, v in
                                                           enumerate(vals)] + [{"epoch": 9}])

    runs = {("weak", None): run("weak", None, [0.385, 0.691]),
            ("labelled_only", 0.138): run("labelled_only", 0.138, [0.70, 0.702])}
    text = S.convergence_reading(runs)
    assert text.splitlines() == [
        "1 of 2 runs were still rising at their last validation: the margins compare how far each got in this "
        "budget, not where each would end:",
        "  weak: 0.385 (epoch 4) -> 0.691 (epoch 8), still rising",
        "  labelled_only_0.138: 0.700 (epoch 4) -> 0.702 (epoch 8)"]
    flat = S.convergence_reading({("weak", None): run("weak", None, [0.70, 0.70])})
    assert flat.startswith("no run was still rising")
