"""Weak vs. no-CVLR vs. full supervision (slrnet.analysis.supervision_gap, experiments/supervision_gap.py)."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from slrnet.analysis import supervision_gap as G


@pytest.mark.parametrize("dataset", ["shapes", "photos"])
def test_the_three_settings_share_backbone_weights_and_schedule(dataset, tmp_path):
    cfgs = {s: G.comparison_config(dataset, s, "quick", tmp_path) for s in G.SETTINGS}
    weak, no_cvlr, full = cfgs["weak"], cfgs["no_cvlr"], cfgs["full"]
    assert weak["model"]["name"] == "slrnet" and weak["model"]["use_cvlr"] and not no_cvlr["model"]["use_cvlr"]
    assert full["model"]["name"] == "slrnet_semi"
    assert full["dataset"]["labelled_ratio"] == 1.0 and full["dataset"]["oversample_rate"] == 1
    assert weak["dataset"]["labelled_ratio"] is None
    for cfg in cfgs.values():
        assert cfg["dataset"]["name"] == dataset
        for key in ("backbone", "pretrained", "backbone_kwargs", "num_classes", "decoder_channels"):
            assert cfg["model"][key] == weak["model"][key], key
        for key in G.SCHEDULE_KEYS:
            assert cfg["train"][key] == weak["train"][key], key
    with pytest.raises(ValueError, match="setting: expected one of"):
        G.comparison_config(dataset, "semi", "quick", tmp_path)


def test_summary_ratios_and_the_paper_row():
    rows = [{"dataset": "shapes", "setting": "weak", "val_miou": 0.6}, {"dataset": "shapes", "setting": "no_cvlr",
            "val_miou": 0.5}, {"dataset": "shapes", "setting": "full", "val_miou": 0.8}]
    summary = G.gap_summary(rows)
    assert summary[0]["dataset"] == "shapes"
    assert math.isclose(summary[0]["weak_over_full"], 0.75) and math.isclose(summary[0]["cvlr_gain"], 0.1)
    paper = summary[-1]
    assert math.isclose(paper["weak_over_full"], 67.2 / 80.8) and math.isclose(paper["cvlr_gain"], 0.045)
    partial = G.gap_summary(rows[:1])[0]
    assert partial["weak_over_full"] is None and partial["cvlr_gain"] is None


def test_a_weak_model_at_or_above_full_supervision_is_flagged():
    rows = [{"dataset": "a", "setting": "weak", "val_miou": 0.81},
            {"dataset": "a", "setting": "full", "val_miou": 0.77, "val_miou_per_epoch": [None, 0.62, None, 0.74, 0.77]},
            {"dataset": "b", "setting": "weak", "val_miou": 0.45}, {"dataset": "b", "setting": "full", "val_miou": 0.62}]
    caveats = G.gap_caveats(rows)
    assert len(caveats) == 1 and caveats[0].startswith("a:")
    assert "0.810" in caveats[0] and "0.770" in caveats[0] and "0.620, 0.740, 0.770" in caveats[0]
    assert G.gap_caveats(rows[2:]) == [] and G.gap_caveats(rows[:1]) == []


@pytest.mark.slow
def test_the_script_trains_and_writes_its_results_file(tmp_path):
    path = Path(__file__).resolve().parent.parent / "experiments" / "supervision_gap.py"
    spec = importlib.util.spec_from_file_location("supervision_gap_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "gap.json"
    assert script.main(["--datasets", "photos", "--settings", "weak", "full", "--profile", "smoke", "--output", str(out),
                        "--workers", "2"]) == 0
    results = json.loads(out.read_text())
    assert [r["setting"] for r in results["rows"]] == ["weak", "full"]
    assert all(0 <= r["val_miou"] <= 1 and r["steps"] > 0 for r in results["rows"])
    assert all(r["val_miou"] == r["val_miou_filtered"] for r in results["rows"])   # one protocol, fixed
    assert results["summary"][0]["dataset"] == "photos" and results["command"].startswith("python experiments/")
    weights = results["pretrained"]["photos"]          # the starting weights every run of the dataset shared
    assert weights["path"] == "weights/tiny_w16_photos.pth" and len(weights["sha256"]) == 64
