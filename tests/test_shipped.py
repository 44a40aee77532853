"""The quick models that ship in weights/ (slrnet.analysis.shipped): each is present, small, learned, and described by a
record that still matches today's configs, files and code's reading of the weights; the notebooks' loader uses
them in the quick profile only."""
from __future__ import annotations

import json
import shutil

import pytest

from slrnet.analysis import shipped
from slrnet.analysis import trained_model as NM
from slrnet.models.loading import load_trained_model


@pytest.mark.parametrize("kind", shipped.KINDS)
def test_shipped_model_matches_its_record(kind):
    path = shipped.shipped_path(kind)
    assert shipped.stale_reasons(kind) == [], f"{path.name} is stale: remake it with `make weights`"
    record = shipped.read_record(path)
    assert path.stat().st_size < 5e6                                   # a few MB in the repository
    assert record["learned"] is True and record["profile"] == "quick" and record["dataset"] == "shapes"
    assert record["command"].startswith("python -m slrnet.analysis.shipped") and record["code"]["commit"]
    model, cfg = load_trained_model(path)                             # strict: today's network takes every tensor
    check = shipped.reading_check(model, cfg)
    assert check["images"] == record["reading_check"]["images"] == shipped.READING_CHECK["num_val"]
    # the same weights read by today's inference code score what they scored when they were made
    assert check["miou"] == pytest.approx(record["reading_check"]["miou"], abs=2e-3)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped files in a copy of weights/ that the tests may change."""
    (tmp_path / "weights").mkdir()
    for kind in shipped.KINDS:
        path = shipped.shipped_path(kind)
        for f in (path, shipped.record_path(path)):
            shutil.copy(f, tmp_path / "weights" / f.name)
    monkeypatch.setattr(shipped, "repo_root", lambda: tmp_path)
    assert all(shipped.stale_reasons(kind) == [] for kind in shipped.KINDS)
    return tmp_path / "weights"


def test_a_changed_config_file_or_first_stage_makes_a_shipped_model_stale(shipped_copy, capsys):
    record_file = shipped.record_path(shipped.shipped_path("real_masks"))
    record = json.loads(record_file.read_text())
    record["config"]["train"]["lr"] = 0.5                              # what a config edit would leave behind
    record_file.write_text(json.dumps(record))
    assert shipped.stale_reasons("real_masks") == ["config train.lr differs from today's"]
    assert shipped.shipped_model("real_masks") is None and "make weights" in capsys.readouterr().err

    first = shipped.shipped_path("weakly_supervised")
    first.write_bytes(first.read_bytes() + b"\0")                      # another first stage
    assert "SHA-256 differs" in shipped.stale_reasons("weakly_supervised")[0]
    assert shipped.stale_reasons("second_stage") == [
        f"it learned from the pseudo labels of another {first.name}"]
    first.unlink()
    assert "is missing" in shipped.stale_reasons("weakly_supervised")[0]


def test_the_loader_uses_a_shipped_model_in_the_quick_profile_only(tmp_path):
    model, cfg, info = NM.load_or_train(None, tmp_path / "05_evaluate", profile="quick")
    assert info["source"] == "shipped" and info["checkpoint"] == str(shipped.shipped_path("weakly_supervised"))
    assert info["learning_check"]["learned"] and cfg["model"]["name"] == "slrnet"
    assert shipped.shipped_model("weakly_supervised", "shapes", profile="smoke") is None
    assert shipped.shipped_model("weakly_supervised", "shapes", profile="full") is None
    with pytest.raises(ValueError, match="kind"):
        shipped.shipped_path("best")
