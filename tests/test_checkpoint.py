"""Checkpoint utilities: atomic save, safe load, ``module.`` prefixes, aliases, mismatch messages."""
import os
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from slrnet.checkpoint import (CheckpointError, StateDictMismatchError, load_checkpoint, load_state_dict_strict,
                               save_checkpoint, strip_prefix)


class AliasedNet(nn.Module):
    """Registers ``conv`` and ``bn`` twice (``newly_added.0/1``), like the official SLRNet ``Net``."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, 2)
        self.newly_added = nn.ModuleList([self.conv, self.bn])

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).mean(dim=(2, 3)))


class Opener:
    """Unpickling this object opens (creates) a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
    return model


def _assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ------------------------------------------------------------------------------------ files
def test_save_load_round_trip_with_optimizer(tmp_path):
    model = _randomised(AliasedNet(), 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    state = {"state_dict": model.state_dict(), "epoch": 3, "optimizer": opt.state_dict(),
             "history": [{"epoch": 0, "loss": 1.5}], "best_miou": 0.25}
    path = save_checkpoint(tmp_path / "runs" / "last.pth", state)       # creates the folder
    ckpt = load_checkpoint(path)                                         # weights_only=True
    assert ckpt["epoch"] == 3 and ckpt["history"] == [{"epoch": 0, "loss": 1.5}]
    fresh = AliasedNet()
    load_state_dict_strict(fresh, ckpt["state_dict"])
    _assert_same_state(model, fresh)
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt["optimizer"])
    moms = [s["momentum_buffer"] for s in opt2.state_dict()["state"].values()]
    assert len(moms) == len(list(model.parameters())) and all(m.abs().sum() > 0 for m in moms)
    assert sorted(os.listdir(path.parent)) == ["last.pth"]               # no temporary file left


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, {"epoch": 1, "w": torch.arange(4.0)})
    before = path.read_bytes()
    real_save = torch.save

    def crash_mid_write(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)           # half of the bytes reached the disk ...
        raise OSError(28, "No space left on device")   # ... then the disk filled up

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(CheckpointError, match=r"no space left on the device holding .* while writing .*last\.pth"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(1000)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]          # no temporary file left


def test_a_really_full_disk_is_named(tmp_path):
    """On a 1 MiB tmpfs torch's own error is 'inline_container.cc ... unexpected pos'; the cause is ENOSPC."""
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the simulated case above still runs")
    try:
        with pytest.raises(CheckpointError, match="no space left on the device holding"):
            save_checkpoint(small / "last.pth", {"w": torch.zeros(1_000_000)})
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_checkpoints_are_as_readable_as_other_outputs(tmp_path):
    path = save_checkpoint(tmp_path / "last.pth", {"w": torch.zeros(2)})
    other = tmp_path / "log.jsonl"
    other.write_text("{}")
    assert path.stat().st_mode & 0o777 == other.stat().st_mode & 0o777


def test_missing_and_truncated_files_are_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(missing)
    path = tmp_path / "cut.pth"
    save_checkpoint(path, {"w": torch.randn(64, 64)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*(truncated|corrupt)"):
        load_checkpoint(path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth is not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")
    (tmp_path / "random.pth").write_bytes(os.urandom(4096).replace(b"\x80", b"\x00", 1).lstrip(b"\x80") or b"x")
    with pytest.raises(CheckpointError, match="random.pth is not a PyTorch checkpoint") as info:
        load_checkpoint(tmp_path / "random.pth")
    assert "pickle" not in str(info.value).split(";")[1] and "weights_only" not in str(info.value)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pth")


def test_weights_only_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": Opener(str(marker))}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "evil.pth" in message and "Python objects besides tensors" in message
    assert "weights_only=False" not in message                           # no advice to load unsafely
    assert not marker.exists()                                            # nothing was executed
    # Explicit opt-in for a trusted file runs the pickle machinery (and here, the payload).
    ckpt = load_checkpoint(path, weights_only=False)
    assert torch.equal(ckpt["state_dict"]["w"], torch.ones(2)) and marker.exists()


# ------------------------------------------------------------------------------ state dicts
def test_strip_prefix_only_touches_prefixed_keys():
    sd = OrderedDict([("module.a.weight", 1), ("module.b", 2), ("c.module.d", 3)])
    assert list(strip_prefix(sd)) == ["a.weight", "b", "c.module.d"]
    assert list(strip_prefix(sd, "module.a.")) == ["weight", "module.b", "c.module.d"]


def test_dataparallel_checkpoint_with_aliases_loads_strictly(tmp_path):
    trained = _randomised(AliasedNet(), 1)
    saved_from_dp = nn.DataParallel(trained).state_dict()                 # module.* keys
    assert all(k.startswith("module.") for k in saved_from_dp)
    assert "module.newly_added.0.weight" in saved_from_dp and "module.conv.weight" in saved_from_dp
    save_checkpoint(tmp_path / "ckpt.pth", {"state_dict": saved_from_dp, "epoch": 29, "optimizer": {}})
    ckpt = load_checkpoint(tmp_path / "ckpt.pth")

    fresh = AliasedNet()
    report = load_state_dict_strict(fresh, ckpt["state_dict"])
    _assert_same_state(trained, fresh)
    assert report.ok and not report.missing and not report.unexpected
    n_aliases = len([k for k in fresh.state_dict() if k.startswith("newly_added.")])
    assert len(report.via_alias) == n_aliases == 6                       # conv weight + 5 BN entries

    # Wrapped model + unprefixed dict, and the full checkpoint dict passed directly.
    wrapped = nn.DataParallel(AliasedNet())
    load_state_dict_strict(wrapped, trained.state_dict())
    _assert_same_state(trained, wrapped.module)
    wrapped2 = nn.DataParallel(AliasedNet())
    load_state_dict_strict(wrapped2, ckpt)
    _assert_same_state(trained, wrapped2.module)


def test_only_one_name_of_an_alias_group_is_enough():
    trained = _randomised(AliasedNet(), 2)
    only_aliases = {k: v for k, v in trained.state_dict().items() if not k.startswith(("conv.", "bn."))}
    fresh = AliasedNet()
    report = load_state_dict_strict(fresh, only_aliases)
    _assert_same_state(trained, fresh)
    assert set(report.via_alias) == {k for k in trained.state_dict() if k.startswith(("conv.", "bn."))}
    # A tensor missing under both of its names is reported once, under its first name.
    del only_aliases["newly_added.0.weight"]
    with pytest.raises(StateDictMismatchError) as info:
        load_state_dict_strict(AliasedNet(), only_aliases)
    assert info.value.report.missing == ["conv.weight"] and "missing (1): conv.weight" in str(info.value)


def test_mismatch_error_names_keys_and_counts():
    model = AliasedNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = OrderedDict((f"module.{k}", v.clone() + 1) for k, v in model.state_dict().items())
    sd["module.head.weight"] = torch.zeros(3, 4)                        # wrong shape
    del sd["module.head.bias"]                                           # missing
    for i in range(12):
        sd[f"module.extra_{i:02d}.weight"] = torch.zeros(1)              # unexpected, more than 10
    with pytest.raises(StateDictMismatchError) as info:
        load_state_dict_strict(model, sd, source="release.pth")
    msg = str(info.value)
    assert "release.pth" in msg and "AliasedNet" in msg
    assert "missing (1): head.bias" in msg
    assert "unexpected (12): extra_00.weight" in msg and "... and 2 more" in msg and "extra_11" not in msg
    assert "head.weight: file (3, 4) vs model (2, 4)" in msg
    assert "strict=False" in msg
    rep = info.value.report
    assert rep.missing == ["head.bias"] and len(rep.unexpected) == 12 and len(rep.mismatched) == 1
    for k, v in model.state_dict().items():                              # nothing copied on failure
        assert torch.equal(v, before[k]), k

    # Non-strict: the matching keys load, the rest is reported in a warning.
    with pytest.warns(UserWarning, match="head.bias"):
        rep = load_state_dict_strict(model, sd, strict=False)
    assert torch.equal(model.conv.weight, before["conv.weight"] + 1)
    assert torch.equal(model.head.weight, before["head.weight"]) and torch.equal(model.head.bias, before["head.bias"])
    assert not rep.ok and "extra_00.weight" in rep.unexpected


def test_ignore_patterns():
    model = AliasedNet()
    sd = dict(model.state_dict())
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 4), torch.zeros(1000)
    for k in [k for k in sd if k.endswith("num_batches_tracked")]:
        del sd[k]
    with pytest.raises(StateDictMismatchError, match="fc.weight"):
        load_state_dict_strict(model, sd)
    rep = load_state_dict_strict(model, sd, ignore=("fc.*",), ignore_missing=("*.num_batches_tracked",))
    assert rep.ok and rep.ignored == ["fc.weight", "fc.bias"]
