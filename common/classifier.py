"""``ImageClassifier``: the training logic shared by every classifier of the labs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from common.losses import LogitNormLoss
from common.models import find_normalize


def adam(params) -> torch.optim.Optimizer:
    """Default optimizer: Adam with its paper's learning rate."""
    return torch.optim.Adam(params, lr=1e-3)


class ImageClassifier(L.LightningModule):
    """Cross-entropy training of any network that maps [0, 1] images to logits.

    Args:
        model: a plain ``nn.Module`` with ``features``/``classifier`` and one ``Normalize`` layer.
        num_classes: classes of the data (linked from the DataModule by the CLI).
        normalization: (mean, std) of the training data, used when the model's ``Normalize``
            layer has no statistics of its own (linked from the DataModule by the CLI).
        optimizer: a callable ``params -> Optimizer`` (in YAML: ``class_path`` + ``init_args``).
        lr_schedule: ``"constant"``, ``"cosine"`` (annealing to 0) or ``"onecycle"``
            (warm-up then annealing, peak at the optimizer's lr), stepped every batch.
        label_smoothing: cross-entropy label smoothing.
        logit_norm: train with LogitNorm at this temperature τ (e.g. 0.04) instead of plain
            cross-entropy (:class:`common.losses.LogitNormLoss`: makes OOD images easier to
            tell apart); ``None``: cross-entropy. Logged losses are the training loss.
        channels_last: keep conv weights and inputs in NHWC memory format (faster convolutions
            on CPUs and tensor-core GPUs; no effect on results); ``"auto"``: for networks with
            convolutions.
        test_time_flip: evaluate (val and test) on the mean logits of each image and its mirror
            image (flip test-time augmentation).

    Logs ``{train,val,test}/loss`` and ``{train,val,test}/acc`` (the mean over the epoch) at
    each epoch's end, and ``train/loss_step`` every ``trainer.log_every_n_steps`` steps.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        normalization: tuple[Sequence[float], Sequence[float]] | None = None,
        optimizer: OptimizerCallable = adam,
        lr_schedule: Literal["constant", "cosine", "onecycle"] = "constant",
        label_smoothing: float = 0.0,
        channels_last: bool | Literal["auto"] = "auto",
        test_time_flip: bool = False,
        logit_norm: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer"])
        self.model = model
        normalize = find_normalize(model)
        if not normalize.is_set and normalization is not None:
            normalize.set_statistics(*normalization)
        if channels_last == "auto":
            channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.test_time_flip = test_time_flip
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.criterion = (
            nn.CrossEntropyLoss(label_smoothing=label_smoothing)
            if logit_norm is None
            else LogitNormLoss(logit_norm, label_smoothing)
        )
        # One loss mean and one accuracy per stage, updated every step and logged once per
        # epoch: `self.log` on every step costs more than a small model's whole step on a CPU.
        # (Keys get a suffix: a ModuleDict key "train" would clash with nn.Module.train.)
        stages = ("train", "val", "test")
        self.mean_loss = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in stages})
        self.accuracy = nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                for s in stages
            }
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.contiguous(memory_format=self.memory_format))

    def _shared_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, stage: str
    ) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        if self.test_time_flip and stage != "train":
            logits = (logits + self(images.flip(-1))) / 2
        if stage == "train":
            loss = self.training_loss(images, logits, targets)
        else:
            loss = self.criterion(logits, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {loss.item()} at step {self.global_step}: lower the learning "
                "rate or enable gradient clipping (trainer.gradient_clip_val); "
                "checkpoints saved so far are kept"
            )
        self.mean_loss[f"{stage}_loss"].update(loss.detach())
        self.accuracy[f"{stage}_acc"].update(logits.detach(), targets)
        if stage == "train" and batch_idx % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True)
        return loss

    def training_loss(
        self, images: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The loss of a training batch (``criterion``); a subclass whose loss needs more than
        the logits (distillation: a teacher's logits of the same images) overrides it, and keeps
        the NaN check, metrics and logging of :meth:`_shared_step`."""
        return self.criterion(logits, targets)

    def _log_epoch(self, stage: str) -> None:
        self.log_dict(
            {
                f"{stage}/loss": self.mean_loss[f"{stage}_loss"],
                f"{stage}/acc": self.accuracy[f"{stage}_acc"],
            },
            prog_bar=True,
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, batch_idx, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, batch_idx, "test")

    def on_train_start(self) -> None:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        for logger in self.loggers:  # a constant: logged once, for tables of runs
            logger.log_metrics({"trainable_params": trainable}, step=self.global_step)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0]).softmax(dim=-1)

    def parameter_groups(self) -> list[dict]:
        """What the optimizer trains; a group's ``lr_factor`` scales the optimizer's lr for it."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameter_groups())
        for group in optimizer.param_groups:
            group["lr"] *= group.get("lr_factor", 1.0)
        if self.lr_schedule == "constant":
            return optimizer
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise ValueError(
                f"lr_schedule={self.lr_schedule!r} needs trainer.max_epochs or max_steps"
            )
        if self.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        else:
            peaks = [group["lr"] for group in optimizer.param_groups]
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, peaks, total_steps=total_steps
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
