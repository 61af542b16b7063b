"""Training losses of the labs' classifiers beyond plain cross-entropy."""

from __future__ import annotations

import torch
from torch import nn


class LogitNormLoss(nn.Module):
    """LogitNorm (Wei et al., "Mitigating Neural Network Overconfidence with Logit
    Normalization", ICML 2022, https://arxiv.org/abs/2205.09310): cross-entropy of the logits
    scaled to unit L2 norm and divided by a temperature τ, CE(z / (τ‖z‖), y).

    Why: with plain cross-entropy the loss keeps falling by growing ‖z‖ on training images,
    which makes the network confident everywhere, OOD images included; fixing the norm leaves
    only the logits' direction to learn. Only training changes: at test time the raw logits z
    are scored (MSP, energy, …), as in the paper.

    Args:
        temperature: τ (the paper's CIFAR-10 value: 0.04); 1/τ is the logits' norm in the loss.
        label_smoothing: as in :class:`torch.nn.CrossEntropyLoss` (the paper uses none).
    """

    def __init__(self, temperature: float = 0.04, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"LogitNorm temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.cross_entropy = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(logits, dim=-1, keepdim=True) + 1e-7  # the paper's ε
        return self.cross_entropy(logits / (norms * self.temperature), targets)
