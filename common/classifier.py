"""``ImageClassifier``: the training logic shared by every classifier of the labs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

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

    Logs ``{train,val,test}/loss`` and ``{train,val,test}/acc`` each epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        normalization: tuple[Sequence[float], Sequence[float]] | None = None,
        optimizer: OptimizerCallable = adam,
        lr_schedule: Literal["constant", "cosine", "onecycle"] = "constant",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer"])
        self.model = model
        normalize = find_normalize(model)
        if not normalize.is_set and normalization is not None:
            normalize.set_statistics(*normalization)
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # keys get a suffix: a ModuleDict key "train" would clash with nn.Module.train
        self.accuracy = nn.ModuleDict(
            {f"{stage}_acc": MulticlassAccuracy(num_classes) for stage in ("train", "val", "test")}
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        loss = self.criterion(logits, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {loss.item()} at step {self.global_step}: lower the learning "
                "rate or enable gradient clipping (trainer.gradient_clip_val); "
                "checkpoints saved so far are kept"
            )
        accuracy = self.accuracy[f"{stage}_acc"]
        accuracy(logits, targets)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            prog_bar=stage != "train",
        )
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0]).softmax(dim=-1)

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
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
