"""TensorBoard for a training run (``misc.tensorboard: true``): the trainer adds this callback, which writes under
``<run>/tensorboard/`` every logged step's loss terms, the learning rate and the factor diagnostics
(``train/<name>``), each epoch's means and validation metrics (``epoch/<name>``, ``val/<name>``) and the training
snapshots another callback drew (``snapshots`` images, from ``<run>/snapshots/epoch_NNN.png``).

    tensorboard --logdir outputs/runs

``tensorboard`` is an optional dependency (``pip install "slrnet[tensorboard]"``); with the key off nothing here
is imported or called.
"""
from __future__ import annotations

from pathlib import Path


class TensorBoardLogger:
    """A trainer callback writing through ``torch.utils.tensorboard.SummaryWriter`` (rank 0 only)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:      # torch's writer needs the tensorboard package
            raise ImportError(f"misc.tensorboard: true needs the tensorboard package (pip install "
                              f"\"slrnet[tensorboard]\"); {err}") from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir))

    def on_step(self, trainer, values: dict) -> None:
        if trainer.global_step % trainer.cfg["misc"]["log_freq"]:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"train/{name}", value, trainer.global_step)
        self.writer.add_scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], trainer.global_step)

    def on_epoch_end(self, trainer, record: dict) -> None:
        step = trainer.global_step
        for name, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "epoch":
                group = "val" if name.startswith("val_") else "epoch"
                self.writer.add_scalar(f"{group}/{name.removeprefix('val_').removeprefix('train_')}", value, step)
        snapshot = trainer.run_dir / "snapshots" / f"epoch_{record['epoch'] + 1:03d}.png"
        if snapshot.is_file():
            import numpy as np
            from PIL import Image

            with Image.open(snapshot) as image:
                self.writer.add_image("snapshots", np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
