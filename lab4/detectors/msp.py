"""Maximum softmax probability (Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
Out-of-Distribution Examples in Neural Networks", ICLR 2017, https://arxiv.org/abs/1610.02136)."""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat

from common.ood import Detector, ScoredBatch


def max_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """max_c softmax(z / T)_c of logits z (N, C) → (N,); T = 1 is the paper's score."""
    return (logits / temperature).softmax(dim=1).amax(dim=1)


class MaxSoftmax(Detector):
    """Detector: :func:`max_softmax` of the logits at ``temperature`` (default 1).

    Example:
        >>> detector = MaxSoftmax()
        >>> detector.score(ScoredBatch(None, None, None, torch.tensor([[0.0, 0.0]])))
        tensor([0.5000])
    """

    def __init__(self, temperature: PositiveFloat = 1.0) -> None:
        self.temperature = temperature
        self.name = "msp" if temperature == 1 else f"msp_T{temperature:g}"

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return max_softmax(batch.logits, self.temperature)
