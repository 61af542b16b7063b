"""Penultimate features of a network (the input of its last linear layer), batched.

Used by the SVM transfer baseline (Lab1) and by feature-space OOD detectors (Lab4).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader


def penultimate(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``classifier[:-1](features(images))``: e.g. the globally pooled maps of a ResNet."""
    return model.classifier[:-1](model.features(images))


@torch.inference_mode()
def extract_features(
    model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and targets of every batch of ``loader`` (uint8 images → [0, 1] floats).

    The model is evaluated in eval mode and left in the mode it was in.
    """
    was_training = model.training
    model.eval().to(device)
    features, targets = [], []
    for images, labels in loader:
        images = images.to(device).float().div_(255)
        features.append(penultimate(model, images).float().cpu())
        targets.append(labels)
    model.train(was_training)
    return torch.cat(features), torch.cat(targets)
