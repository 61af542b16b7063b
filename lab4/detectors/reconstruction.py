"""Reconstruction error of an autoencoder trained on ID images, the classic novelty score (e.g.
Sakurada & Yairi, "Anomaly Detection Using Autoencoders with Nonlinear Dimensionality
Reduction", MLSDA 2014, https://doi.org/10.1145/2689746.2689747). It ignores the classifier."""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveInt

from common.checkpoints import load_classifier_checkpoint
from common.ood import Detector, ScoredBatch
from lab4.models import ConvAutoencoder, reconstruction_error


class ReconstructionError(Detector):
    """Detector: −mean squared error ‖x − g(x)‖² / D of the autoencoder g of ``checkpoint``
    (``python -m lab4 fit --config configs/lab4/autoencoder_cifar10.yaml``).

    The checkpoint is read when the first batch is scored, so a config naming it can be
    smoke-run (``fit``) before the autoencoder exists.

    Args:
        checkpoint: the autoencoder's fit checkpoint.
        channels: its ``ConvAutoencoder`` channels (default: the class's).

    Example:
        >>> detector = ReconstructionError("runs/lab4/autoencoder_cifar10/checkpoints/best.ckpt")
        >>> detector.score(ScoredBatch(None, images, None, None)).shape  # images in [0, 1]
        torch.Size([N])
    """

    name = "autoencoder"

    def __init__(self, checkpoint: str, channels: list[PositiveInt] | None = None) -> None:
        self.checkpoint = checkpoint
        self.channels = channels
        self._autoencoder: ConvAutoencoder | None = None

    @property
    def autoencoder(self) -> ConvAutoencoder:
        if self._autoencoder is None:
            autoencoder = ConvAutoencoder(*([self.channels] if self.channels else []))
            load_classifier_checkpoint(autoencoder, self.checkpoint)
            self._autoencoder = autoencoder.eval()
        return self._autoencoder

    @torch.no_grad()
    def score(self, batch: ScoredBatch) -> torch.Tensor:
        autoencoder = self.autoencoder.to(batch.images.device)
        return -reconstruction_error(autoencoder, batch.images)
