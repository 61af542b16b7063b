"""Penultimate features of a network (the input of its last linear layer), batched.

Used by the SVM transfer baseline (Lab1) and by feature-space OOD detectors (Lab4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn


def head(model: nn.Module) -> nn.Linear:
    """The network's last layer, ``classifier[-1]``: the linear map from penultimate features to
    logits that every network of the project ends with (feature-space detectors use its weights)."""
    layer = getattr(model, "classifier", None)
    layer = layer[-1] if isinstance(layer, nn.Sequential) and len(layer) else None
    if not isinstance(layer, nn.Linear):
        raise TypeError(
            f"{type(model).__name__} has no linear last layer `classifier[-1]`: feature-space "
            "methods need a network laid out as `features` → `classifier` (an nn.Sequential "
            "ending with nn.Linear)"
        )
    return layer


def penultimate(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``classifier[:-1](features(images))``: e.g. the globally pooled maps of a ResNet."""
    return model.classifier[:-1](model.features(images))


@torch.inference_mode()
def extract_features(model: nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Features (on the CPU) of every batch of model inputs, e.g. a DataModule's
    ``preprocessed_batches``. The model is evaluated in eval mode and left in its mode."""
    was_training = model.training
    model.eval()
    features = [penultimate(model, images).float().cpu() for images in batches]
    model.train(was_training)
    return torch.cat(features)


class HeadCapture:
    """Keeps the input (penultimate features) and output (logits) of a network's last layer,
    ``classifier[-1]``, from the first forward pass after :meth:`arm`: the pass that computes
    the logits yields the features too. Later passes (ODIN's, an attack's) are not recorded."""

    def __init__(self, network: nn.Module) -> None:
        self.handle = head(network).register_forward_hook(self._record)
        self.armed = False
        self.features: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None

    def _record(self, layer: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        if self.armed:
            self.features, self.logits, self.armed = inputs[0], output, False

    def arm(self) -> None:
        self.armed, self.features, self.logits = True, None, None

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits of the recorded pass."""
        if self.features is None or self.logits is None:
            raise RuntimeError("the network's last layer (classifier[-1]) did not run in this step")
        return self.features, self.logits

    def remove(self) -> None:
        self.handle.remove()


def features_and_logits(
    network: nn.Module,
    batches: Iterable[torch.Tensor],
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Each batch with the penultimate features and logits of *one* forward pass, without
    ``torch.no_grad``'s second pass: ``forward`` (default: ``network``; a LightningModule whose
    ``forward`` adds test-time augmentation passes itself) runs once and a hook on ``network``'s
    last layer keeps what it saw. Yields ``(images, features, logits)``."""
    capture = HeadCapture(network)
    try:
        for images in batches:
            capture.arm()
            with torch.no_grad():
                (forward or network)(images)
            yield images, *capture.take()
    finally:
        capture.remove()
