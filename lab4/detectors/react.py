"""ReAct, rectified activations (Sun, Guo & Li, "ReAct: Out-of-distribution Detection With
Rectified Activations", NeurIPS 2021, https://arxiv.org/abs/2111.12797): OOD images drive a few
penultimate units abnormally high, so clipping the activations at a high percentile of the ID
ones lowers their logits more than those of ID images."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from jsonargparse.typing import restricted_number_type
from torch import nn

from common.features import penultimate
from common.ood import Detector, ScoredBatch, TuningResult, require_head
from lab4.detectors.energy import energy

Percentile = restricted_number_type("Percentile", float, [(">", 0), ("<=", 100)])


def percentiles(values: torch.Tensor, q: Sequence[float]) -> torch.Tensor:
    """The q-th percentiles (len(q),), in float64, of all values, interpolated linearly between
    the two nearest ranks as ``numpy.percentile`` does (``torch.quantile`` refuses inputs of
    more than 2²⁴ elements, fewer than 10 000 images' 2048 activations)."""
    ordered = values.flatten().double().sort().values
    position = (
        torch.tensor(q, dtype=torch.float64, device=ordered.device) / 100 * (len(ordered) - 1)
    )
    lower = position.floor().long()
    upper = (lower + 1).clamp(max=len(ordered) - 1)
    return torch.lerp(ordered[lower], ordered[upper], position - lower)


def react(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, threshold: float
) -> torch.Tensor:
    """ReAct score (N,): energy logsumexp(W min(x, c) + b) of features x (N, D) clipped at c,
    with the last layer's weight W (C, D) and bias b (C,)."""
    clipped = features.to(weight.dtype).clamp(max=threshold)
    return energy(nn.functional.linear(clipped, weight, bias))


class ReAct(Detector):
    """Detector: :func:`react` with the threshold c the ``percentile``-th percentile of all
    penultimate activations of the ID training images (:meth:`fit`), and temperature 1.

    The last layer's W and b are copied at :meth:`fit`: the scores do not depend on the
    module's later state.

    Args:
        percentile: in (0, 100] (default 90, the paper's choice), or
        percentiles: a grid; :meth:`tune` keeps the percentile with the best validation AUROC.

    Example:
        >>> detector = ReAct().fit(train_features, train_targets, head=head(network))
        >>> detector.score_features(test_features).shape  # (M, D) → (M,)
        torch.Size([M])
    """

    needs_fitting = True

    def __init__(
        self, percentile: Percentile = 90.0, percentiles: list[Percentile] | None = None
    ) -> None:
        self.percentiles = percentiles or [percentile]
        self._choose(percentile)

    def _choose(self, percentile: float) -> None:
        self.percentile = percentile
        self.name = f"react{percentile:g}"

    @property
    def needs_tuning(self) -> bool:
        return len(self.percentiles) > 1

    def fit(
        self,
        features: torch.Tensor,
        targets: torch.Tensor | None = None,
        head: nn.Linear | None = None,
    ) -> ReAct:
        head = require_head(head, "ReAct")
        self.weight = head.weight.detach().float().cpu()
        self.bias = None if head.bias is None else head.bias.detach().float().cpu()
        candidates = sorted({*self.percentiles, self.percentile})
        thresholds = percentiles(features, candidates).tolist()
        self.thresholds = dict(zip(candidates, thresholds, strict=True))
        return self

    def score_features(
        self, features: torch.Tensor, percentile: float | None = None
    ) -> torch.Tensor:
        """Scores (N,) of features (N, D) at ``percentile`` (default: the chosen one)."""
        threshold = self.thresholds[self.percentile if percentile is None else percentile]
        bias = None if self.bias is None else self.bias.to(features.device)
        return react(features, self.weight.to(features.device), bias, threshold)

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> TuningResult:
        """Keep the percentile with the best validation AUROC; the AUROC grid is
        (len(percentiles),)."""

        def scores(features: torch.Tensor) -> torch.Tensor:  # (len(percentiles), N)
            return torch.stack([self.score_features(features, p) for p in self.percentiles]).cpu()

        with torch.no_grad():
            id_scores, ood_scores = (
                torch.cat([scores(penultimate(model, x)) for x in batches], dim=1)
                for batches in (id_batches, ood_batches)
            )
        result = TuningResult.from_scores({"percentile": self.percentiles}, id_scores, ood_scores)
        self._choose(**result.best)
        return result

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return self.score_features(batch.features)
