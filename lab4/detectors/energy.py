"""Energy score (Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020,
https://arxiv.org/abs/2010.03759)."""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat

from common.ood import Detector, ScoredBatch


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy T·logsumexp(z / T) of logits z (N, C) → (N,)."""
    return temperature * torch.logsumexp(logits / temperature, dim=1)


class Energy(Detector):
    """Detector: :func:`energy` of the logits at ``temperature`` (default 1, as in the paper).

    Example:
        >>> Energy().score(ScoredBatch(None, None, None, torch.zeros(1, 2)))  # log 2
        tensor([0.6931])
    """

    def __init__(self, temperature: PositiveFloat = 1.0) -> None:
        self.temperature = temperature
        self.name = "energy" if temperature == 1 else f"energy_T{temperature:g}"

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return energy(batch.logits, self.temperature)
