"""Nothing lost, every mistake one clear line: run folders, resume, numbers, validation, checkpoints, classes.

One test (or a few) per case a user met: two runs into one folder, a resumed run with a new learning rate,
``5e-4`` in YAML, tracebacks instead of an ``error:`` line, overrides that skipped validation, class counts
that disagree, misleading checkpoint advice, and the smaller leftovers (temporary files, duplicated log lines).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from slrnet.checkpoint import save_checkpoint
from slrnet.cli import main
from slrnet.config import ConfigError, load_config, merge_overrides, save_config
from slrnet.errors import RunFolderInUse
from slrnet.run_folder import RunFolder
from slrnet.models import build_model
from slrnet.train import Trainer, build_optimizer


@pytest.fixture
def quick_cfg(tiny_cfg):
    """``tiny_cfg`` for one step of one epoch, validated on one image."""
    def make(root, **over):
        return tiny_cfg(root, **{"train.num_epochs": 1, "train.max_steps_per_epoch": 1, "train.val_max_images": 1,
                                 **over})
    return make


def run_cli(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


# ---------------------------------------------------------------- 1. a run folder belongs to one run
def test_second_training_into_a_finished_run_is_refused(tmp_path, tiny_root, quick_cfg):
    Trainer.build(quick_cfg(tiny_root), tmp_path / "run").fit()
    best = (tmp_path / "run" / "checkpoints" / "best.pth").read_bytes()
    with pytest.raises(RunFolderInUse, match=r"already holds a run .*--resume.*--overwrite.*another --run name"):
        Trainer.build(quick_cfg(tiny_root), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "best.pth").read_bytes() == best     # untouched
    assert not (tmp_path / "run" / ".lock").exists()                                # the refused start left no lock
    trainer = Trainer.build(quick_cfg(tiny_root, **{"misc.seed": 9}), tmp_path / "run", overwrite=True)
    assert not (tmp_path / "run" / "log.jsonl").exists()                            # the old results are gone
    trainer.fit()
    assert len([json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]) >= 1


def test_a_live_run_holds_its_folder_and_a_stale_lock_is_taken_over(tmp_path):
    import socket

    folder = tmp_path / "run"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".lock").write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        with pytest.raises(RunFolderInUse, match=f"in use by process {sleeper.pid}"):
            RunFolder(folder).claim()
    finally:
        sleeper.kill()
        sleeper.wait()
    RunFolder(folder).claim().release()                       # the same lock, its process gone: stale
    assert not (folder / ".lock").exists()


def test_cli_refuses_a_second_run_with_the_same_name(tmp_path, tiny_root, capsys, quick_cfg):
    config = tmp_path / "tiny.yaml"
    save_config(quick_cfg(tiny_root, **{"misc.log_dir": str(tmp_path / "logs")}), config)
    assert run_cli(["train", "--config", str(config), "--run", "a"], capsys)[0] == 0
    rc, err = run_cli(["train", "--config", str(config), "--run", "a"], capsys)
    assert rc == 2 and err.startswith("error: run folder") and "already holds a run" in err and "\n" not in err
    assert run_cli(["train", "--config", str(config), "--run", "a", "--overwrite"], capsys)[0] == 0


# ---------------------------------------------------------------- 2. resume takes the config's schedule
def test_resume_trains_at_the_configs_new_learning_rate(tmp_path, tiny_root, quick_cfg):
    Trainer.build(quick_cfg(tiny_root, **{"train.lr": 0.01, "train.num_epochs": 1}), tmp_path / "r").fit()
    cfg = quick_cfg(tiny_root, **{"train.lr": 0.001, "train.num_epochs": 2, "misc.resume": 1})
    trainer = Trainer.build(cfg, tmp_path / "r")
    assert trainer.start_epoch == 1
    fresh = [g["initial_lr"] for g in build_optimizer(trainer.model, cfg).param_groups]
    assert [g["initial_lr"] for g in trainer.optimizer.param_groups] == pytest.approx(fresh)
    assert fresh[0] == pytest.approx(0.001)
    trainer.fit()
    steps = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert all(s["lr"] <= 0.001 + 1e-12 for s in steps if s.get("epoch") == 1 and "step" in s)


# ---------------------------------------------------------------- 3. numbers as people write them
def test_scientific_notation_in_files_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 5e-4\n  num_samples: 4e4\n  loss_coeff: [1, 4e0, 4, 1]\nmodel:\n  num_classes: 21\n")
    cfg = load_config(path, ["train.weight_decay=1e-4"])
    assert cfg["train"]["lr"] == 5e-4 and cfg["train"]["weight_decay"] == 1e-4
    assert cfg["train"]["num_samples"] == 40000 and isinstance(cfg["train"]["num_samples"], int)
    assert cfg["train"]["loss_coeff"] == [1.0, 4.0, 4.0, 1.0]
    assert merge_overrides(cfg, ["train.lr=1e-3"])["train"]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="train.batch_size: expected a whole number, got 2.5"):
        merge_overrides(cfg, ["train.batch_size=2.5"])


# ---------------------------------------------------------------- 4. one error line, not a traceback
@pytest.mark.parametrize("override, expected", [
    ("misc.device=gpu", "misc.device = 'gpu'; expected auto, cpu, cuda, cuda:N or mps"),
    ("train.batch_size=0", "train.batch_size = 0; expected at least 1"),
])
def test_cli_bad_values_are_one_line(override, expected, tmp_path, tiny_root, capsys, quick_cfg):
    config = tmp_path / "tiny.yaml"
    save_config(quick_cfg(tiny_root, **{"misc.log_dir": str(tmp_path / "logs")}), config)
    rc, err = run_cli(["train", "--config", str(config), "--run", "x", override], capsys)
    assert rc == 2 and expected in err and "\n" not in err and "Traceback" not in err


def test_cli_checkpoint_errors_are_one_line(tmp_path, tiny_root, capsys, quick_cfg):
    config = tmp_path / "tiny.yaml"
    save_config(quick_cfg(tiny_root, **{"misc.log_dir": str(tmp_path / "logs")}), config)
    zero = tmp_path / "zero.pth"
    zero.write_bytes(b"")
    rc, err = run_cli(["infer", "--config", str(config), "--checkpoint", str(zero), "--output", str(tmp_path / "o")],
                      capsys)
    assert rc == 2 and "zero.pth is empty (0 bytes)" in err and "\n" not in err
    wrong = tmp_path / "wrong.pth"                                   # a 5-class model's weights, a 7-class config
    five_classes = build_model({**quick_cfg(tiny_root)["model"], "num_classes": 5})
    save_checkpoint(wrong, {"state_dict": five_classes.state_dict()})
    rc, err = run_cli(["infer", "--config", str(config), "--checkpoint", str(wrong), "--output", str(tmp_path / "o")],
                      capsys)
    assert rc == 2 and "was trained for 5 classes but the config's model.num_classes is 7" in err and "\n" not in err
    rc, err = run_cli(["train", "--config", str(config), "--run", "y", "misc.resume=1",
                       f"misc.resume_checkpoint_path={zero}"], capsys)
    assert rc == 2 and "zero.pth is empty" in err and "\n" not in err


def test_divergence_in_the_first_epoch_does_not_claim_a_checkpoint(tmp_path, tiny_root, capsys, quick_cfg):
    from slrnet.errors import TrainingDiverged

    trainer = Trainer.build(quick_cfg(tiny_root), tmp_path / "nan")
    forward = trainer.model.forward

    def poisoned(*args, **kwargs):
        out = forward(*args, **kwargs)
        out["losses"]["cls"] = out["losses"]["cls"] * float("nan")
        return out

    trainer.model.forward = poisoned
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet") as info:
        trainer.fit()
    assert "is kept" not in str(info.value) and "epoch 1, step 1" in str(info.value)


# ---------------------------------------------------------------- 5. overrides get the file's validation
@pytest.mark.parametrize("override, key", [
    ("model.num_classes=0", "model.num_classes"), ("model.scale_factor=0", "model.scale_factor"),
    ("train.loss_coeff=[1]", "train.loss_coeff"), ("train.num_epochs=-3", "train.num_epochs"),
    ("train.max_steps_per_epoch=-1", "train.max_steps_per_epoch"), ("dataset.crop_size=7", "dataset.crop_size"),
])
def test_overrides_are_validated_like_file_values(override, key, tmp_path):
    with pytest.raises(ConfigError, match=f"override: {key} = .*; expected"):
        merge_overrides(load_config("configs/shapes_quick.yaml"), [override])
    path = tmp_path / "c.yaml"
    section, rest = override.split(".", 1)
    name, value = rest.split("=")
    path.write_text(f"{section}:\n  {name}: {value}\n")
    with pytest.raises(ConfigError, match=f"{key} = .*; expected"):
        load_config(path)


# ---------------------------------------------------------------- 6. classes of the model vs the data
def test_class_count_mismatch_is_named_in_training_and_inference(tmp_path, tiny_root, quick_cfg):
    with pytest.raises(ValueError, match=r"model.num_classes = 5, but the training data has 7 classes.*"
                                         r"set model.num_classes=7"):
        Trainer.build(quick_cfg(tiny_root, **{"model.num_classes": 5}), tmp_path / "run")
    assert not (tmp_path / "run" / "config.yaml").exists()      # a refused start leaves no run behind
    from slrnet.data import build_dataset
    from slrnet.infer import TestConfig, run_inference

    model = build_model({**quick_cfg(tiny_root)["model"], "num_classes": 5}).eval()
    val = build_dataset(quick_cfg(tiny_root)["dataset"], "val", train=False)
    with pytest.raises(ValueError, match="the model predicts 5 classes but the data has 7"):
        run_inference(model, val, tmp_path / "out", TestConfig(scales=[1.0]), device="cpu")


# ---------------------------------------------------------------- 8. leftovers of killed runs
def test_killed_writes_and_steps_past_the_checkpoint_leave_nothing_behind(tmp_path, tiny_root, quick_cfg):
    run = tmp_path / "run"
    Trainer.build(quick_cfg(tiny_root, **{"train.num_epochs": 1}), run).fit()
    (run / "checkpoints" / ".last.pth.abc123.tmp").write_bytes(b"half a checkpoint")
    with open(run / "log.jsonl", "a") as f:                     # steps of epoch 1 logged, then killed mid-line
        f.write(json.dumps({"step": 99, "epoch": 1, "loss": 1.0}) + "\n" + '{"step": 100, "ep')
    trainer = Trainer.build(quick_cfg(tiny_root, **{"train.num_epochs": 2, "misc.resume": 1}), run)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    trainer.fit()
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert not any(r.get("step") == 99 for r in records)
    epochs = [r["epoch"] for r in records if "val_miou" in r]
    assert epochs == sorted(set(epochs)) == [0, 1]             # each epoch's summary once


def test_notebook_style_parameters_are_checked(tiny_root, quick_cfg):
    with pytest.raises(ConfigError, match="train.num_epochs = -1"):
        merge_overrides(quick_cfg(tiny_root), {"train.num_epochs": -1})
    with pytest.raises(ConfigError, match="train.batch_size = 0"):
        merge_overrides(quick_cfg(tiny_root), {"train.batch_size": 0})


# ---------------------------------------------------------------- kill -9, then resume
KILLED_RUN = """
import torch
torch.set_num_threads(1)
from slrnet.config import load_config
from slrnet.train import Trainer
Trainer.build(load_config({config!r}), {run!r}).fit()
"""


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_root, tiny_cfg):
    """SIGKILL a training process once it has written a checkpoint (possibly during the next write): the folder's
    lock is stale, ``last.pth`` loads, and resuming ends with the same weights as a run never interrupted."""
    import signal
    import time

    from slrnet.checkpoint import load_checkpoint

    run, epochs = tmp_path / "killed", 10                   # the learning-rate schedule depends on the epochs
    save_config(tiny_cfg(tiny_root, **{"train.num_epochs": epochs}), tmp_path / "killed.yaml")
    script = KILLED_RUN.format(config=str(tmp_path / "killed.yaml"), run=str(run))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.pth").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the training process wrote no checkpoint in 120 s"
        time.sleep(0.05)
    time.sleep(0.3)                                           # somewhere in the following epochs
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / ".lock").exists()                           # left behind by the killed process ...
    done = load_checkpoint(run / "checkpoints" / "last.pth")["epoch"]
    assert done < epochs - 1, "the run finished before it was killed; kill it sooner"
    resumed = Trainer.build(tiny_cfg(tiny_root, **{"train.num_epochs": epochs, "misc.resume": 1}), run)   # ... and stale
    assert resumed.start_epoch == done + 1
    resumed.fit()
    full = Trainer.build(tiny_cfg(tiny_root, **{"train.num_epochs": epochs}), tmp_path / "full")
    full.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
