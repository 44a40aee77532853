"""The SLRNet trainer: one CPU, one GPU, or many GPUs / nodes through ``torchrun`` (DDP).

Follows METHOD.md section 3 and the authors' ``tools/train_voc_wss.py``: SGD with Nesterov momentum,
four parameter groups with LR multipliers, a constant LR during the pretraining epochs and cosine
annealing afterwards, total loss ``c0·cls + c1·mask + c2·code + [epoch > pretrain_epochs]·c3·seg``.

What it adds for users: ``device="auto"``, AMP on CUDA, per-epoch seeding (bit-exact resume on CPU),
atomic checkpoints (``last.pth`` every epoch, ``best.pth`` by ``train.best_by``: val mIoU or val cls loss),
a NaN/Inf guard that stops with the last good checkpoint kept, tqdm progress with the loss terms, a JSONL log,
PNG snapshots (image | mask | refined mask | pseudo label) and val mIoU per epoch; a run folder belongs to one
run (``slrnet.run_folder``).

    python -m slrnet train --config configs/shapes_quick.yaml --run demo
    torchrun --nproc_per_node 4 -m slrnet train --config configs/voc_wss_resnet38.yaml --run r38

    >>> from slrnet.config import load_config
    >>> from slrnet.train import Trainer
    >>> trainer = Trainer.build(load_config("configs/shapes_quick.yaml"), run_dir="runs/demo")
    >>> history = trainer.fit()
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from slrnet.checkpoint import load_checkpoint, load_state_dict_strict, save_checkpoint
from slrnet.config import SECTIONS, save_config
from slrnet.errors import RunFolderInUse, TrainingDiverged  # noqa: F401  (slrnet.train.TrainingDiverged)
from slrnet.models import build_model
from slrnet.pretrain import resolve_pretrained
from slrnet.run_folder import RunFolder
from slrnet.utils import progress, resolve_device, seed_everything, write_json
from slrnet.variants import variant


def lr_multipliers(cfg: dict) -> list[float]:
    if cfg["train"]["lr_multipliers"] is not None:
        return [float(m) for m in cfg["train"]["lr_multipliers"]]
    return [1.0, 2.0, 10.0, 20.0] if cfg["model"]["backbone"] in ("resnet38", "wideresnet38") else [1.0, 1.0, 10.0, 10.0]


def build_optimizer(model, cfg: dict) -> torch.optim.SGD:
    """SGD Nesterov; groups [bb weights, bb biases, new weights, new biases]; no decay on biases."""
    t = cfg["train"]
    mult = lr_multipliers(cfg)
    groups = []
    for params, m, decay in zip(model.parameter_groups(), mult, (True, False, True, False)):
        if params:
            groups.append({"params": params, "lr": t["lr"] * m, "initial_lr": t["lr"] * m,
                           "weight_decay": t["weight_decay"] if decay else 0.0})
    return torch.optim.SGD(groups, lr=t["lr"], momentum=t["momentum"], nesterov=True,
                           weight_decay=t["weight_decay"])


def lr_factor(epoch: int, step_in_epoch: int, steps_per_epoch: int, cfg: dict) -> float:
    """``train.lr_policy``: "cosine" (SLRNet's) is constant during pretraining, then a cosine over the
    post-pretraining steps (as CosineAnnealingLR there); "poly" (mmsegmentation's, the second stage's) is
    (1 - step / steps)^0.9 over every step."""
    t = cfg["train"]
    if t["lr_policy"] == "poly":
        total = max(1, t["num_epochs"] * steps_per_epoch)
        return (1.0 - min(epoch * steps_per_epoch + step_in_epoch, total) / total) ** 0.9
    if epoch <= t["pretrain_epochs"]:
        return 1.0
    total = max(1, (t["num_epochs"] - t["pretrain_epochs"]) * steps_per_epoch)
    done = (epoch - t["pretrain_epochs"] - 1) * steps_per_epoch + step_in_epoch
    return 0.5 * (1.0 + math.cos(math.pi * min(done, total) / total))


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


@contextmanager
def _main_rank_first(world: int, is_main: bool):
    """Under DDP, rank 0 runs the block first (making a missing dataset or pretrained file) and the other
    ranks then run it and find the files made; a no-op in a single process."""
    if world > 1 and not is_main:
        dist.barrier()
    try:
        yield
    finally:
        if world > 1 and is_main:
            dist.barrier()


def start_distributed(device: str | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process; under torchrun the process group is started here (NCCL on
    CUDA, gloo otherwise) and each process takes the GPU of its local rank. Safe to call more than once."""
    rank, world, local_rank = _distributed()
    if world <= 1:
        return rank, world, resolve_device(device or "auto")
    use_cuda = torch.cuda.is_available() and str(device) in ("auto", "cuda", "None")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    return rank, world, dev


def build_datasets(cfg: dict, train_set=None, val_set=None):
    """(training set, val set) from the config's ``dataset`` section, for the sets not given: the semi variants
    get their labelled / unlabelled split (``dataset.labelled_list`` / ``labelled_ratio``); the default shapes
    dataset is generated on first use."""
    from slrnet.data import build_dataset, build_semi_dataset

    if train_set is None and variant(cfg["model"]["name"]).semi_supervised:
        train_set = build_semi_dataset(cfg["dataset"], cfg["model"]["name"], seed=int(cfg["misc"]["seed"]))
    if train_set is None:
        train_set = build_dataset(cfg["dataset"], "train", train=True)
    if val_set is None:
        val_set = build_dataset(cfg["dataset"], "val", train=False)
    return train_set, val_set


def check_class_counts(cfg: dict, train_set, val_set) -> None:
    for name, data in (("training", train_set), ("validation", val_set)):
        n = getattr(data, "num_classes", None)
        if n is not None and int(n) != cfg["model"]["num_classes"]:
            where = getattr(data, "classes_source", None) or getattr(data, "root", "the dataset")
            raise ValueError(f"model.num_classes = {cfg['model']['num_classes']}, but the {name} data has {n} "
                             f"classes (background included; from {where}); set model.num_classes={n}")


class Trainer:
    """Trains a built SLRNet on built datasets, as a validated config (see slrnet.config) says.

        >>> trainer = Trainer.build(cfg, "runs/demo")      # builds the datasets and the model the config names
        >>> trainer = Trainer.build(cfg, "runs/demo", model, train_set, val_set)    # or hand it the parts

    Constructing a trainer trains nothing: :meth:`build` makes the parts (generating the default dataset and the
    tiny backbone's pretrained weights on first use), ``__init__`` takes them and :meth:`fit` trains.
    """

    @classmethod
    def build(cls, cfg: dict, run_dir: str | os.PathLike, train_set=None, val_set=None,
              device: str | None = None, overwrite: bool = False) -> "Trainer":
        """The parts the config names, then the trainer. Under DDP rank 0 makes any missing files first."""
        rank, world, _ = start_distributed(device or cfg["misc"]["device"])
        seed_everything(int(cfg["misc"]["seed"]))          # the model's initial weights follow misc.seed
        with _main_rank_first(world, rank == 0):
            train_set, val_set = build_datasets(cfg, train_set, val_set)
            check_class_counts(cfg, train_set, val_set)
            # a tiny backbone's pretrained file is made on first use (slrnet.pretrain), like the shapes data
            pretrained = resolve_pretrained(cfg["model"])
        model = build_model({**cfg["model"], "pretrained": pretrained})
        return cls(cfg, run_dir, model, train_set, val_set, device=device, overwrite=overwrite)

    def __init__(self, cfg: dict, run_dir: str | os.PathLike, model, train_set, val_set,
                 device: str | None = None, overwrite: bool = False):
        """``run_dir`` must not hold another run unless ``misc.resume`` (continue it) or ``overwrite`` (delete its
        results first); it is locked while this trainer lives (``slrnet.run_folder``)."""
        self.cfg = cfg
        self.rank, self.world, self.device = start_distributed(device or cfg["misc"]["device"])
        self.is_main = self.rank == 0
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.folder = None
        if self.is_main:
            self.folder = RunFolder(self.run_dir).claim(resume=bool(cfg["misc"]["resume"]), overwrite=overwrite)
        try:
            self._setup(cfg, model, train_set, val_set)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the run folder back (done at the end of :meth:`fit`, and at exit)."""
        if self.folder is not None:
            self.folder.release()

    def _setup(self, cfg: dict, model, train_set, val_set) -> None:
        if self.is_main:
            (self.run_dir / "snapshots").mkdir(parents=True, exist_ok=True)
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
        t = cfg["train"]
        self.batch_size = t["batch_size"]
        self.weighted_sampler = None
        if t["num_samples"]:
            from slrnet.data.sampling import WeightedEpochSampler, class_balanced_weights
            if not hasattr(train_set, "image_labels"):
                raise ValueError(f"train.num_samples: the training set ({type(train_set).__name__}) has no "
                                 f"image_labels() to weight the draw by")
            self.weighted_sampler = WeightedEpochSampler(class_balanced_weights(train_set.image_labels()),
                                                         t["num_samples"], seed=self.seed, rank=self.rank,
                                                         world=self.world)
        n_images = len(self.weighted_sampler) * self.world if self.weighted_sampler else len(train_set)
        n_batches = n_images // (self.batch_size * self.world)
        if n_batches == 0:
            raise ValueError(f"train.batch_size={self.batch_size} x {self.world} process(es) is larger than the "
                             f"training set ({len(train_set)} images)")
        self.steps_per_epoch = min(n_batches, t["max_steps_per_epoch"]) if t["max_steps_per_epoch"] else n_batches
        self.start_epoch, self.global_step = 0, 0
        self.best_miou, self.history = -1.0, []
        self.best_by = t["best_by"]                     # which validation number picks best.pth
        self.best_value = -math.inf if self.best_by == "val_miou" else math.inf
        self._snapshot_batch = None
        self.pseudo_history: list[tuple[int, torch.Tensor]] = []   # (epoch, (n, H, W) pseudo labels)
        if cfg["misc"]["resume"]:
            self.resume(cfg["misc"]["resume_checkpoint_path"] or self.ckpt_dir / "last.pth")
        if self.is_main:   # written once everything checked out: a failed start leaves no "run" behind
            save_config(cfg, self.run_dir / "config.yaml")

    # ------------------------------------------------------------------ checkpoints
    def check_learning(self) -> dict:
        """Did this run learn (``slrnet.learning_check``)? Compares the last epoch with the label prior's
        classification loss and with predicting background everywhere on val; prints the paragraph when it did
        not and writes it to ``<run>/learning_check.json``."""
        from slrnet.learning_check import background_only_miou, check_learning, label_prior_loss

        prior = None
        labels = getattr(self.train_set, "image_labels", None)
        terms = getattr(self.model, "classification_terms", lambda: None)()
        if labels is not None and terms is not None:
            prior = label_prior_loss(labels(), terms=terms)
        limit = self.cfg["train"]["val_max_images"] or None
        weakly = getattr(self.model, "variant", None) in ("wss", "coco", "lid")    # pseudo labels are all it has
        report = check_learning(self.history, prior, background_only_miou(self.val_set, self.model.num_classes, limit),
                                judge_pseudo_labels=weakly)
        if not report["learned"]:
            print(report["message"], flush=True)
        write_json(self.run_dir / "learning_check.json", report)
        return report

    def _state(self, epoch: int) -> dict:
        return {"state_dict": self.model.state_dict(), "epoch": epoch,
                "learning_check": getattr(self, "learning_check", None),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "global_step": self.global_step, "best_miou": self.best_miou,
                "best_by": self.best_by, "best_value": self.best_value,
                "history": self.history, "config": {k: self.cfg[k] for k in SECTIONS}}

    def resume(self, path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        load_state_dict_strict(self.model, ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self._apply_config_schedule()
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.global_step = int(ckpt.get("global_step", 0))
        self.best_miou = float(ckpt.get("best_miou", -1.0))
        if ckpt.get("best_by", "val_miou") == self.best_by:
            self.best_value = float(ckpt.get("best_value", self.best_miou if self.best_by == "val_miou" else math.inf))
        self.history = list(ckpt.get("history", []))
        self._drop_log_records_after(self.start_epoch - 1)

    def _apply_config_schedule(self) -> None:
        """After loading an optimiser state: learning rates, momentum and weight decay come from the config, so a
        resumed run with a changed ``train.lr`` trains at the new rate (the saved state would bring the old one)."""
        fresh = build_optimizer(self.model, self.cfg)
        if len(fresh.param_groups) != len(self.optimizer.param_groups):
            raise ValueError("resume: the checkpoint's optimiser has another parameter-group layout than this model")
        for old, new in zip(self.optimizer.param_groups, fresh.param_groups):
            if self.is_main and abs(old["initial_lr"] - new["initial_lr"]) > 1e-12 * max(1.0, new["initial_lr"]):
                print(f"resume: learning rate {old['initial_lr']:g} -> {new['initial_lr']:g} (from the config)",
                      flush=True)
            for key in ("initial_lr", "lr", "momentum", "weight_decay", "nesterov"):
                old[key] = new[key]

    def _drop_log_records_after(self, epoch: int) -> None:
        """A killed run may have logged steps past its last checkpoint; they are retrained, so drop them."""
        log = self.run_dir / "log.jsonl"
        if not self.is_main or not log.is_file():
            return
        import json

        from slrnet.utils import atomic_write_bytes

        kept = []
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:          # the half-written last line of a killed process
                continue
            if record.get("epoch", -1) <= epoch:
                kept.append(line)
        atomic_write_bytes(log, "".join(line + "\n" for line in kept).encode())

    # ------------------------------------------------------------------ loop
    def _loader(self, epoch: int) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        sampler = self.weighted_sampler
        if sampler is not None:
            sampler.set_epoch(epoch)
        elif self.world > 1:
            sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank,
                                         shuffle=True, seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=sampler is None, sampler=sampler,
                          drop_last=True, num_workers=self.cfg["train"]["num_workers"], generator=g,
                          pin_memory=self.device.type == "cuda",
                          persistent_workers=False)

    def fit(self) -> list[dict]:
        try:
            return self._fit()
        finally:
            self.release()

    def _fit(self) -> list[dict]:
        t = self.cfg["train"]
        for epoch in range(self.start_epoch, t["num_epochs"]):
            seed_everything(self.seed + 7919 * (epoch + 1))   # bit-exact resume at epoch boundaries
            train_stats = self.train_epoch(epoch)
            record = {"epoch": epoch, **train_stats}
            last = epoch == t["num_epochs"] - 1
            if self.is_main and (last or (t["val_every"] and (epoch + 1) % t["val_every"] == 0)):
                record.update(self.validate())
                self.snapshot(epoch)
            self.history.append(record)
            if self.is_main and last:
                self.learning_check = self.check_learning()
            if self.is_main:
                self._log(record)
                self.best_miou = max(self.best_miou, record.get("val_miou", -1.0))
                value = record.get(self.best_by)
                is_best = value is not None and (value > self.best_value if self.best_by == "val_miou"
                                                 else value < self.best_value)
                if is_best:
                    self.best_value = value
                state = self._state(epoch)
                save_checkpoint(self.ckpt_dir / "last.pth", state)
                if is_best:
                    save_checkpoint(self.ckpt_dir / "best.pth", state)
            if self.world > 1:
                dist.barrier()
        if self.world > 1:
            self._check_replicas()
        if self.is_main:
            write_json(self.run_dir / "history.json", self.history)
        return self.history

    def train_epoch(self, epoch: int) -> dict:
        t = self.cfg["train"]
        c = t["loss_coeff"]
        seg_on = epoch > t["pretrain_epochs"]
        model = self.ddp or self.model
        model.train()
        sums: dict[str, float] = {}
        start = time.perf_counter()
        loader = self._loader(epoch)
        bar = progress(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{t['num_epochs']}",
                       disable=None if self.is_main and self.cfg["misc"]["verbose"] >= 2 else True, leave=False)
        for step, batch in enumerate(loader):
            if step >= self.steps_per_epoch:
                break
            if self._snapshot_batch is None and self.cfg["misc"]["num_snapshots"] > 0:   # 0: no snapshots
                self._snapshot_batch = {k: v[: self.cfg["misc"]["num_snapshots"]] for k, v in batch.items()
                                        if isinstance(v, torch.Tensor)}
            factor = lr_factor(epoch, step, self.steps_per_epoch, self.cfg)
            for g in self.optimizer.param_groups:
                g["lr"] = g["initial_lr"] * factor
            images = batch["image"].to(self.device, non_blocking=True)
            labels = batch["labels"].to(self.device, non_blocking=True)
            semi = {}
            if self.model.takes_pixel_labels:   # semi-supervised and second stage only: never a weak variant
                semi = {"pixel_labels": batch["mask"].to(self.device, non_blocking=True),
                        "has_mask": batch["has_mask"].to(self.device, non_blocking=True)}
            with torch.autocast(self.device.type, enabled=self.amp):
                out = model(images, labels, **semi, seg_loss=seg_on)   # pretraining: no pseudo labels needed
            losses = {k: v.float() for k, v in out["losses"].items() if v.dim() == 0}
            loss = c[0] * losses["cls"] + c[1] * losses["mask"] + c[2] * losses["code"]
            if "seg_labelled" in losses:      # pixel-labelled images: segmentation loss on from the start
                loss = loss + c[3] * losses["seg_labelled"]
            if seg_on:
                loss = loss + c[3] * losses["seg"]
            if not torch.isfinite(loss):
                terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
                last = self.ckpt_dir / "last.pth"
                kept = (f"the last good checkpoint ({last}) is kept: fix the cause, then resume from it with "
                        f"--resume" if last.is_file() else "no checkpoint had been written yet")
                raise TrainingDiverged(
                    f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1} ({terms}); stopped; {kept}. "
                    f"Lower train.lr (a resumed run takes the config's learning rate) or check the data.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.global_step += 1
            values = {"loss": loss.item(), **{k: v.item() for k, v in losses.items()}}
            pseudo = out.get("maps", {}).get("pseudo_gt")
            if seg_on and pseudo is not None:     # images whose pseudo label holds no foreground pixel at all
                values["pseudo_empty"] = float((pseudo[:, 1:].flatten(1).sum(1) == 0).float().mean())
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
            bar.update()
            if self.is_main and self.global_step % self.cfg["misc"]["log_freq"] == 0:
                self._log({"step": self.global_step, "epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
                           **values})
        bar.close()
        n = max(1, min(self.steps_per_epoch, len(loader)))
        stats = {f"train_{k}": v / n for k, v in sums.items()}
        stats["lr"] = self.optimizer.param_groups[0]["lr"]
        stats["seconds"] = time.perf_counter() - start
        return stats

    @property
    def snapshot_images(self) -> torch.Tensor | None:
        """The fixed training crops whose pseudo labels ``snapshot`` records every epoch."""
        return None if self._snapshot_batch is None else self._snapshot_batch["image"]

    # ------------------------------------------------------------------ evaluation and logs
    @torch.no_grad()
    def validate(self) -> dict:
        """Single-scale val mIoU with the test-time class filtering of the config's ``test`` section; with
        ``train.best_by: val_cls_loss`` also the mean classification loss of the val images (eval mode, both
        views, image labels only), the number the authors' trainers keep ``best.pth.tar`` by."""
        from slrnet.infer import Predictor, TestConfig
        from slrnet.metrics import ConfusionMatrix

        # one view, the config's class filtering; the model itself (optimize=False): its weights keep training
        single_view = TestConfig.from_config(self.cfg, scales=(1.0,), flip=False, use_cls_label=False,
                                             apply_crf=False)
        predictor = Predictor(self.model, single_view, device=self.device, amp=self.amp, optimize=False)
        cm = ConfusionMatrix(self.model.num_classes)
        cls_losses: list[float] = []
        limit = min(self.cfg["train"]["val_max_images"] or len(self.val_set), len(self.val_set))
        batch: list[dict] = []    # consecutive images of one size go through the network together

        def predict_batch():
            for pred, s in zip(predictor.predict(torch.stack([s["image"] for s in batch])), batch):  # (B, H, W)
                cm.update(pred, s["mask"])
            batch.clear()

        for i in range(limit):
            sample = self.val_set[i]
            if batch and (len(batch) == self.batch_size or sample["image"].shape != batch[0]["image"].shape):
                predict_batch()
            batch.append(sample)
            if self.best_by == "val_cls_loss":
                images, labels = sample["image"][None].to(self.device), sample["labels"][None].to(self.device)
                with torch.autocast(self.device.type, enabled=self.amp):
                    cls_losses.append(float(self.model(images, labels)["losses"]["cls"]))
        if batch:
            predict_batch()
        self.model.train()
        out = {"val_miou": float(cm.miou()), "val_pixel_acc": float(cm.pixel_accuracy())}
        if cls_losses:
            out["val_cls_loss"] = sum(cls_losses) / len(cls_losses)
        return out

    @torch.no_grad()
    def snapshot(self, epoch: int) -> Path | None:
        """PNG grid of image | mask | refined mask | pseudo label for fixed training images."""
        if self._snapshot_batch is None or not getattr(self.model, "makes_pseudo_labels", True):
            return None
        from slrnet.viz.training import plot_training_snapshot, pseudo_to_index

        self.model.eval()
        b = self._snapshot_batch
        out = self.model(b["image"].to(self.device), b["labels"].to(self.device))
        self.model.train()
        fig = plot_training_snapshot(b["image"], out["maps"], class_names=getattr(self.train_set, "class_names", None))
        self.pseudo_history.append((epoch, pseudo_to_index(out["maps"]["pseudo_gt"]).to(torch.uint8).cpu()))
        path = self.run_dir / "snapshots" / f"epoch_{epoch + 1:03d}.png"
        fig.savefig(path, dpi=80)
        import matplotlib.pyplot as plt
        plt.close(fig)
        return path

    def _log(self, record: dict) -> None:
        import json
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}) + "\n")
        if "val_miou" in record and self.cfg["misc"]["verbose"] >= 1:
            print(f"epoch {record['epoch'] + 1}: loss {record.get('train_loss', float('nan')):.4f} "
                  f"val mIoU {record['val_miou']:.4f} ({record.get('seconds', 0):.1f}s)", flush=True)

    def _check_replicas(self) -> None:
        """All ranks must hold identical weights; rank 0 records the largest difference."""
        flat = torch.cat([p.detach().float().flatten() for p in self.model.parameters()]).cpu()
        gathered = [torch.zeros_like(flat) for _ in range(self.world)]
        dist.all_gather(gathered, flat)
        diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
        if self.is_main:
            write_json(self.run_dir / "ddp_check.json", {"world_size": self.world, "replica_max_abs_diff": diff})


# ---------------------------------------------------------------------- CLI
def add_cli_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="experiment YAML (sections misc/train/dataset/model/test)")
    # --run mirrors the original tool; under torchrun use --run_name (torchrun's own --run-path
    # makes a bare --run ambiguous to its argument parser).
    parser.add_argument("--run", "--run_name", dest="run", default="",
                        help="run name; outputs go to <misc.log_dir>/<config name>/<run>")
    parser.add_argument("--seed", type=int, default=None, help="overrides misc.seed")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides misc.device)")
    parser.add_argument("--resume", action="store_true", help="resume from the run's last checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the results of a run already in the --run folder and start again")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse_suppress())
    parser.add_argument("opts", nargs="*", help="config overrides, e.g. train.num_epochs=2 model.use_cvlr=false")


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def cli_run(args) -> int:
    from slrnet.config import load_config, merge_overrides

    cfg = load_config(args.config, args.opts)
    if args.seed is not None:
        cfg = merge_overrides(cfg, {"misc.seed": args.seed})
    if args.device is not None:
        cfg = merge_overrides(cfg, {"misc.device": args.device})
    if args.resume:
        cfg = merge_overrides(cfg, {"misc.resume": 1})
    run = args.run or time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg["misc"]["log_dir"]) / Path(args.config).stem / run
    trainer = Trainer.build(cfg, run_dir, overwrite=bool(args.overwrite))
    history = trainer.fit()
    if trainer.is_main:
        best = max((h.get("val_miou", -1) for h in history), default=-1)
        print(f"run: {run_dir}\nbest val mIoU: {best:.4f}\ncheckpoints: {trainer.ckpt_dir}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
