"""The SLRNet trainer: one CPU, one GPU, or many GPUs / nodes through ``torchrun`` (DDP).

A generic loop over METHOD.md section 3. The optimiser and schedule are :mod:`slrnet.optim`, the total loss
:func:`slrnet.objective.total_loss`, the batches :class:`slrnet.data.sampling.TrainingBatches`, validation the
test-time :class:`slrnet.infer.Predictor`, the run folder and its log :class:`slrnet.run_folder.RunFolder`. Which
labels a step hands the network is the variant's (``Variant.takes_pixel_labels``: a weakly supervised variant
never receives a pixel label). Figures come from callbacks the caller passes (``slrnet.viz.training``).
Also: ``device="auto"``, AMP on CUDA, per-epoch seeding (bit-exact resume on CPU), atomic checkpoints (``last.pth``
every epoch, ``best.pth`` by ``train.best_by``), a NaN/Inf guard keeping the last good checkpoint, a JSONL log.

    python -m slrnet train --config configs/shapes_quick.yaml --run demo
    torchrun --nproc_per_node 4 -m slrnet train --config configs/voc_wss_resnet38.yaml --run r38

    >>> trainer = Trainer.build(load_config("configs/shapes_quick.yaml"), run_dir="runs/demo")
    >>> history = trainer.fit()
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from slrnet.checkpoint import load_checkpoint, load_state_dict_strict, save_checkpoint
from slrnet.config import SECTIONS, save_config
from slrnet.data.build import check_class_counts, check_training_data
from slrnet.data.splits import build_training_sets
from slrnet.data.sampling import TrainingBatches
from slrnet.distributed import main_rank_first, replica_max_abs_diff, start_distributed
from slrnet.errors import TrainingDiverged
from slrnet.models import build_model
from slrnet.objective import total_loss
from slrnet.optim import apply_config_schedule, build_optimizer, lr_factor, set_lr
from slrnet.pretrain import resolve_pretrained
from slrnet.run_folder import RunFolder
from slrnet.utils import progress, seed_everything, write_json


def _notify(callbacks, event: str, *args) -> None:
    """Callbacks are objects with any of ``on_batch(trainer, batch)`` (before each step), ``on_step(trainer, values)``
    (after it), ``on_validation(trainer, epoch)`` (rank 0, after each validation) and ``on_epoch_end(trainer, record)``,
    e.g. ``slrnet.viz.training.TrainingSnapshots``, ``slrnet.tensorboard.TensorBoardLogger``."""
    for callback in callbacks:
        hook = getattr(callback, event, None)
        if hook is not None:
            hook(*args)


class Trainer:
    """Trains a built model on built datasets as a validated config says: :meth:`build` makes the parts the config
    names (an embedded dataset and the tiny backbone's weights on first use), ``__init__`` takes them, :meth:`fit`
    trains. ``run_dir`` must not hold another run unless ``misc.resume`` (continue it) or ``overwrite`` (delete its
    results first); it is locked while the trainer lives. ``Trainer.build(cfg, "runs/demo", callbacks=[...])``."""

    @classmethod
    def build(cls, cfg: dict, run_dir: str | os.PathLike, train_set=None, val_set=None, device: str | None = None,
              overwrite: bool = False, callbacks=()) -> "Trainer":
        """The parts the config names, then the trainer. Under DDP rank 0 makes any missing files first."""
        rank, world, _ = start_distributed(device or cfg["misc"]["device"])
        seed_everything(int(cfg["misc"]["seed"]))          # the model's initial weights follow misc.seed
        with main_rank_first(world, rank == 0):
            train_set, val_set = build_training_sets(cfg, train_set, val_set)
            check_training_data(cfg, train_set, val_set)               # class counts; every val image decodes
            # a tiny backbone's pretrained file is made on first use (slrnet.pretrain), like the shapes data
            pretrained = resolve_pretrained(cfg["model"])
        model = build_model({**cfg["model"], "pretrained": pretrained})
        return cls(cfg, run_dir, model, train_set, val_set, device=device, overwrite=overwrite, callbacks=callbacks)

    def __init__(self, cfg: dict, run_dir: str | os.PathLike, model, train_set, val_set,
                 device: str | None = None, overwrite: bool = False, callbacks=()):
        self.cfg, self.callbacks = cfg, list(callbacks)
        self.rank, self.world, self.device = start_distributed(device or cfg["misc"]["device"])
        self.is_main = self.rank == 0
        if cfg["misc"]["tensorboard"] and self.is_main:     # after the caller's callbacks: it reads their snapshots
            from slrnet.tensorboard import TensorBoardLogger
            self.callbacks.append(TensorBoardLogger(Path(run_dir) / "tensorboard"))
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.folder = RunFolder(self.run_dir)
        if self.is_main:
            self.folder.claim(resume=bool(cfg["misc"]["resume"]), overwrite=overwrite)
        try:
            self._setup(cfg, model, train_set, val_set)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the run folder back and close the callbacks' files (done at the end of :meth:`fit`, and at exit)."""
        _notify(self.callbacks, "close")
        self.folder.release()

    def _setup(self, cfg: dict, model, train_set, val_set) -> None:
        if self.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.seed = int(cfg["misc"]["seed"])
        if cfg["misc"]["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        check_class_counts(cfg, train_set, val_set)
        self.train_set, self.val_set = train_set, val_set
        self.model = model.to(self.device)
        if self.world > 1 and self.device.type == "cuda" and getattr(self.model, "sync_batchnorm", False):
            # a model that trains its BatchNorms (the second stage) normalises over every GPU's batch
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.optimizer = build_optimizer(self.model, cfg)
        self.amp = bool(cfg["misc"]["amp"]) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ddp = None
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.batches = TrainingBatches(train_set, cfg, self.rank, self.world, pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.start_epoch, self.global_step = 0, 0
        self.best_miou, self.history = -1.0, []
        self.best_by = cfg["train"]["best_by"]                     # which validation number picks best.pth
        self.best_value = -math.inf if self.best_by == "val_miou" else math.inf
        self.learning_check = None
        if cfg["misc"]["resume"]:
            self.resume(cfg["misc"]["resume_checkpoint_path"] or self.ckpt_dir / "last.pth")
        if self.is_main:   # written once everything checked out: a failed start leaves no "run" behind
            save_config(cfg, self.run_dir / "config.yaml")

    # ------------------------------------------------------------------ the loop
    def fit(self) -> list[dict]:
        try:
            return self._fit()
        finally:
            self.release()

    def _fit(self) -> list[dict]:
        t = self.cfg["train"]
        for epoch in range(self.start_epoch, t["num_epochs"]):
            seed_everything(self.seed + 7919 * (epoch + 1))   # bit-exact resume at epoch boundaries
            record = {"epoch": epoch, **self.train_epoch(epoch)}
            last = epoch == t["num_epochs"] - 1
            if self.is_main and (last or (t["val_every"] and (epoch + 1) % t["val_every"] == 0)):
                record.update(self.validate())
                _notify(self.callbacks, "on_validation", self, epoch)
            self.history.append(record)
            _notify(self.callbacks, "on_epoch_end", self, record)
            if self.is_main:
                if last:
                    self.learning_check = self.check_learning()
                self._log(record)
                self._save(epoch, record)
            if self.world > 1:
                dist.barrier()
        if self.world > 1:
            diff = replica_max_abs_diff(self.model, self.world)
            if self.is_main:
                write_json(self.run_dir / "ddp_check.json", {"world_size": self.world, "replica_max_abs_diff": diff})
        if self.is_main:
            write_json(self.run_dir / "history.json", self.history)
        return self.history

    def train_epoch(self, epoch: int) -> dict:
        t = self.cfg["train"]
        seg_on = epoch > t["pretrain_epochs"]
        model = self.ddp or self.model
        model.train()
        sums, ran = {}, 0                         # ran: steps this epoch had (a short loader may end sooner)
        start = time.perf_counter()
        bar = progress(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{t['num_epochs']}",
                       disable=None if self.is_main and self.cfg["misc"]["verbose"] >= 2 else True, leave=False)
        for step, batch in zip(range(self.steps_per_epoch), self.batches.loader(epoch)):
            _notify(self.callbacks, "on_batch", self, batch)
            set_lr(self.optimizer, lr_factor(epoch, step, self.steps_per_epoch, self.cfg))
            values, ran = self.train_step(model, batch, epoch, step, seg_on), step + 1
            _notify(self.callbacks, "on_step", self, values)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
            bar.update()
            if self.is_main and self.global_step % self.cfg["misc"]["log_freq"] == 0:
                self._log({"step": self.global_step, "epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
                           **values})
        bar.close()
        stats = {f"train_{k}": v / max(1, ran) for k, v in sums.items()}
        stats["lr"] = self.optimizer.param_groups[0]["lr"]
        stats["seconds"] = time.perf_counter() - start
        return stats

    def train_step(self, model, batch: dict, epoch: int, step: int, seg_on: bool) -> dict:
        """One optimiser step on ``batch``; returns the logged values (loss, each term, pseudo_empty)."""
        images = batch["image"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        pixel = {}
        if self.model.takes_pixel_labels:   # the variant's spec: semi-supervised and second stage, never weak ones
            pixel = {"pixel_labels": batch["mask"].to(self.device, non_blocking=True),
                     "has_mask": batch["has_mask"].to(self.device, non_blocking=True)}
        with torch.autocast(self.device.type, enabled=self.amp):
            out = model(images, labels, **pixel, seg_loss=seg_on)   # pretraining: no pseudo labels needed
        terms = {k: v.float() for k, v in out["losses"].items() if v.dim() == 0}
        loss = total_loss(terms, self.cfg["train"]["loss_coeff"], seg_on)
        if not torch.isfinite(loss):
            raise TrainingDiverged.at(loss.item(), {k: v.item() for k, v in terms.items()}, epoch, step,
                                      self.ckpt_dir / "last.pth")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        values = {"loss": loss.item(), **{k: v.item() for k, v in terms.items()},
                  **{k: float(v) for k, v in out.get("diagnostics", {}).items()}}   # e.g. slrnet.diagnostics
        pseudo = out.get("maps", {}).get("pseudo_gt")
        if seg_on and pseudo is not None:     # images whose pseudo label holds no foreground pixel at all
            values["pseudo_empty"] = float((pseudo[:, 1:].flatten(1).sum(1) == 0).float().mean())
        return values

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict:
        """Single-scale val mIoU with the test-time class filtering of the config's ``test`` section, through the
        test-time :class:`~slrnet.infer.Predictor` on the model itself (its weights keep training); with
        ``train.best_by: val_cls_loss`` also the mean classification loss of the val images (eval mode, both views,
        image labels only), the number the authors' trainers keep ``best.pth.tar`` by."""
        from slrnet.infer import Predictor, TestConfig

        single_view = TestConfig.from_config(self.cfg, scales=(1.0,), flip=False, use_cls_label=False,
                                             apply_crf=False)
        predictor = Predictor(self.model, single_view, device=self.device, amp=self.amp, optimize=False)
        limit = self.cfg["train"]["val_max_images"] or None
        cm = predictor.confusion_matrix(self.val_set, max_images=limit, batch_size=self.batches.batch_size)
        out = {"val_miou": float(cm.miou()), "val_pixel_acc": float(cm.pixel_accuracy())}
        if self.best_by == "val_cls_loss":
            losses = []
            for i in range(min(limit or len(self.val_set), len(self.val_set))):
                sample = self.val_set[i]
                images, labels = sample["image"][None].to(self.device), sample["labels"][None].to(self.device)
                with torch.autocast(self.device.type, enabled=self.amp):
                    losses.append(float(self.model(images, labels)["losses"]["cls"]))
            out["val_cls_loss"] = sum(losses) / len(losses)
        self.model.train()
        return out

    def check_learning(self) -> dict:
        """Did this run learn (``slrnet.learning_check``)? Compares the last epoch with the label prior's
        classification loss and with predicting background everywhere on val; prints the paragraph when it did
        not and writes it to ``<run>/learning_check.json``."""
        from slrnet.learning_check import background_only_miou, check_learning, label_prior_loss

        prior, spec = None, getattr(self.model, "spec", None)
        labels = getattr(self.train_set, "image_labels", None)
        terms = getattr(self.model, "classification_terms", lambda: None)()
        if labels is not None and terms is not None:
            prior = label_prior_loss(labels(), terms=terms)
        limit = self.cfg["train"]["val_max_images"] or None
        report = check_learning(self.history, prior, background_only_miou(self.val_set, self.model.num_classes, limit),
                                judge_pseudo_labels=spec is not None and spec.learns_from_pseudo_labels_only)
        if not report["learned"]:
            print(report["message"], flush=True)
        write_json(self.run_dir / "learning_check.json", report)
        return report

    # ------------------------------------------------------------------ checkpoints and the log
    def _save(self, epoch: int, record: dict) -> None:
        """``last.pth`` every epoch, ``best.pth`` when ``train.best_by`` improved."""
        self.best_miou = max(self.best_miou, record.get("val_miou", -1.0))
        value = record.get(self.best_by)
        is_best = value is not None and (value > self.best_value if self.best_by == "val_miou"
                                         else value < self.best_value)
        if is_best:
            self.best_value = value
        state = {"state_dict": self.model.state_dict(), "epoch": epoch, "learning_check": self.learning_check,
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "global_step": self.global_step, "best_miou": self.best_miou, "best_by": self.best_by,
                 "best_value": self.best_value, "history": self.history,
                 "config": {k: self.cfg[k] for k in SECTIONS}}
        save_checkpoint(self.ckpt_dir / "last.pth", state)
        if is_best:
            save_checkpoint(self.ckpt_dir / "best.pth", state)

    def resume(self, path) -> None:
        """Continue the run saved in ``path``: weights, optimiser (at the config's learning rates), counters,
        history; the log loses the records of steps past that checkpoint."""
        ckpt = load_checkpoint(path, map_location=self.device)
        load_state_dict_strict(self.model, ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        apply_config_schedule(self.optimizer, self.model, self.cfg, verbose=self.is_main)
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.global_step = int(ckpt.get("global_step", 0))
        self.best_miou = float(ckpt.get("best_miou", -1.0))
        if ckpt.get("best_by", "val_miou") == self.best_by:
            self.best_value = float(ckpt.get("best_value", self.best_miou if self.best_by == "val_miou" else math.inf))
        self.history = list(ckpt.get("history", []))
        if self.is_main:
            self.folder.drop_log_records_after(self.start_epoch - 1)

    def _log(self, record: dict) -> None:
        self.folder.append_log(record)
        if "val_miou" in record and self.cfg["misc"]["verbose"] >= 1:
            print(f"epoch {record['epoch'] + 1}: loss {record.get('train_loss', float('nan')):.4f} "
                  f"val mIoU {record['val_miou']:.4f} ({record.get('seconds', 0):.1f}s)", flush=True)
