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


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
    Network", 2015, https://arxiv.org/abs/1503.02531):

        α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + (1 − α) · CE(z_s, y),

    the KL divergence averaged over the batch. The T² factor keeps the soft term's gradients at
    the scale of the hard term's whatever T (they shrink as 1/T² otherwise, section 2).

    Args:
        student_logits: z_s, (N, C).
        teacher_logits: z_t, (N, C) (no gradient flows into them).
        targets: y, (N,) class indices.
        temperature: T > 0; T > 1 softens both distributions (T = 1: the plain softmax).
        alpha: weight of the soft (teacher) term; 0 gives cross-entropy alone, 1 the soft term
            alone.
        label_smoothing: of the cross-entropy term, as in :class:`torch.nn.CrossEntropyLoss`.

    Example:
        >>> z = torch.tensor([[2.0, 0.0, -1.0]])
        >>> distillation_loss(z, z, torch.tensor([0]), alpha=1.0)  # same logits: nothing to learn
        tensor(0.)
    """
    soft = nn.functional.kl_div(
        torch.log_softmax(student_logits.float() / temperature, dim=-1),
        torch.log_softmax(teacher_logits.detach().float() / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    hard = nn.functional.cross_entropy(
        student_logits.float(), targets, label_smoothing=label_smoothing
    )
    return alpha * temperature**2 * soft + (1 - alpha) * hard


class DistillationLoss(nn.Module):
    """:func:`distillation_loss` with its temperature T, weight α and label smoothing fixed:
    ``loss(student_logits, teacher_logits, targets)``."""

    def __init__(
        self, temperature: float = 4.0, alpha: float = 0.9, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"distillation temperature must be positive, got {temperature}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"distillation alpha must be in [0, 1], got {alpha}")
        self.temperature, self.alpha, self.label_smoothing = temperature, alpha, label_smoothing

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return distillation_loss(
            student_logits,
            teacher_logits,
            targets,
            self.temperature,
            self.alpha,
            self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}"
