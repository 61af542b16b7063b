"""Penultimate features of a network (the input of its last linear layer), batched.

Used by the SVM transfer baseline (Lab1) and by feature-space OOD detectors (Lab4).
"""

from __future__ import annotations

from collections.abc import Iterable

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
