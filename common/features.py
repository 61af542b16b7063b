"""Penultimate features of a network (the input of its last linear layer), batched.

Used by the SVM transfer baseline (Lab1) and by feature-space OOD detectors (Lab4).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


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
