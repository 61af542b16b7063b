"""``AutoencoderModule``: trains a :class:`lab4.models.ConvAutoencoder` on ID images (MSE).

Its reconstruction error is an OOD score (:class:`lab4.detectors.ReconstructionError`): images
unlike the training data reconstruct worse.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from lab4.models import reconstruction_error


def adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


class AutoencoderModule(L.LightningModule):
    """MSE training of an autoencoder on [0, 1] images; logs ``{train,val,test}/loss``.

    Args:
        model: the autoencoder (``images -> reconstructions``).
        optimizer: a callable ``params -> Optimizer``.
        num_classes, normalization: linked by the CLI to every model; an autoencoder ignores them.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerCallable = adam,
        num_classes: int | None = None,
        normalization: tuple | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.mean_loss = nn.ModuleDict(
            {f"{s}_loss": MeanMetric() for s in ("train", "val", "test")}
        )

    def _step(self, batch, stage: str) -> torch.Tensor:
        images, _ = batch
        loss = reconstruction_error(self.model, images).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage} loss is {loss.item()}: lower the learning rate")
        self.mean_loss[f"{stage}_loss"].update(loss.detach())
        self.log(
            f"{stage}/loss",
            self.mean_loss[f"{stage}_loss"],
            on_step=False,
            on_epoch=True,
            prog_bar=True,
        )
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        return self.optimizer(self.parameters())
