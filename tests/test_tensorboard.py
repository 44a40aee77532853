"""misc.tensorboard: the trainer's event files, read back with TensorBoard's own reader."""
import pytest

from slrnet.train import Trainer
from slrnet.viz.training import TrainingSnapshots

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_event_files_hold_losses_lr_val_metrics_diagnostics_and_snapshots(tiny_root, tiny_cfg, tmp_path):
    cfg = tiny_cfg(tiny_root, **{"misc.tensorboard": True, "train.num_epochs": 2, "misc.log_freq": 1})
    trainer = Trainer.build(cfg, tmp_path / "run", callbacks=[TrainingSnapshots(2)])
    history = trainer.fit()
    events = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"),
                                                size_guidance={event_accumulator.IMAGES: 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/cls", "train/lr", "train/factor_code_top", "val/miou", "epoch/loss"} <= scalars
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, trainer.global_step + 1))
    assert events.Scalars("val/miou")[-1].value == pytest.approx(history[-1]["val_miou"])
    assert events.Scalars("val/miou")[-1].step == trainer.global_step
    assert len(events.Images("snapshots")) == 2


def test_off_by_default_and_in_the_smoke_profile(tiny_root, tiny_cfg, tmp_path):
    from slrnet.profiles import training_config
    from slrnet.config import load_config
    from pathlib import Path

    trainer = Trainer.build(tiny_cfg(tiny_root, **{"train.num_epochs": 1}), tmp_path / "run")
    trainer.fit()
    assert not (tmp_path / "run" / "tensorboard").exists()
    configs = Path(__file__).resolve().parent.parent / "configs"
    assert load_config(configs / "coco_wss_resnet38.yaml")["misc"]["tensorboard"] is True
    smoke = training_config(configs / "voc_wss_resnet38.yaml", "smoke", tmp_path)
    full = training_config(configs / "shapes_quick.yaml", "full", tmp_path)
    assert smoke["misc"]["tensorboard"] is False and full["misc"]["tensorboard"] is True
