"""Maximum logit (Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World
Settings", ICML 2022, https://arxiv.org/abs/1911.11132)."""

from __future__ import annotations

import torch

from common.ood import Detector, ScoredBatch


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """max_c z_c of logits z (N, C) → (N,): MSP without the softmax's normalisation."""
    return logits.amax(dim=1)


class MaxLogit(Detector):
    """Detector: :func:`max_logit` of the logits.

    Example:
        >>> MaxLogit().score(ScoredBatch(None, None, None, torch.tensor([[2.0, -1.0]])))
        tensor([2.])
    """

    name = "max_logit"

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return max_logit(batch.logits)
