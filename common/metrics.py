"""Evaluation metrics the labs share (beyond torchmetrics' own)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def explanation_confidence(
    model: nn.Module, images: torch.Tensor, saliency: torch.Tensor, classes: torch.Tensor
) -> dict[str, float]:
    """Average Drop and Increase in Confidence of saliency maps (Chattopadhay et al.,
    Grad-CAM++, 2018), as torch-cam computes them.

    Each image is multiplied by its saliency map (N, H, W in [0, 1]); with ``Y`` the softmax
    probability of the explained class on the image and ``O`` on the masked image:
    Average Drop = mean(max(0, Y − O) / Y) (lower is better: the map keeps what the class needs),
    Increase in Confidence = fraction of images with O > Y (higher is better).
    """
    rows = torch.arange(len(classes), device=images.device)
    before = model(images).softmax(dim=1)[rows, classes]
    after = model(images * saliency[:, None]).softmax(dim=1)[rows, classes]
    return {
        "average_drop": ((before - after).clamp_min(0) / before).mean().item(),
        "increase_in_confidence": (after > before).float().mean().item(),
    }
