"""k-nearest-neighbour distance (Sun et al., "Out-of-Distribution Detection with Deep Nearest
Neighbors", ICML 2022, https://arxiv.org/abs/2204.06507)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from jsonargparse.typing import PositiveInt
from torch import nn

from common.features import penultimate
from common.ood import Detector, ScoredBatch, TuningResult


class KNN(Detector):
    """Detector: −‖z − z₍ₖ₎‖ with z the L2-normalised penultimate features and z₍ₖ₎ the k-th
    nearest normalised ID training feature (the bank, set by :meth:`fit`).

    Args:
        k: the neighbour (default 50, the paper's CIFAR-10 choice), or
        ks: a grid; :meth:`tune` keeps the k with the best validation AUROC (as the paper
            chooses k on validation data).

    Example:
        >>> detector = KNN(k=10).fit(train_features)  # (N, D)
        >>> detector.score_features(test_features).shape
        torch.Size([M])
    """

    needs_fitting = True

    def __init__(self, k: PositiveInt = 50, ks: list[PositiveInt] | None = None) -> None:
        self.ks = ks or [k]
        self._choose(k)

    def _choose(self, k: int) -> None:
        self.k = k
        self.name = f"knn{k}"

    @property
    def needs_tuning(self) -> bool:
        return len(self.ks) > 1

    def fit(
        self,
        features: torch.Tensor,
        targets: torch.Tensor | None = None,
        head: nn.Linear | None = None,
    ) -> KNN:
        self.bank = nn.functional.normalize(features.float(), dim=1)
        return self

    def distances(
        self, features: torch.Tensor, ks: Sequence[int], chunk: int = 1024
    ) -> torch.Tensor:
        """Distances (N, len(ks)) of features (N, D) to their ks-th nearest bank features."""
        queries = nn.functional.normalize(features.float(), dim=1)
        bank = self.bank.to(features.device)
        index = torch.tensor([min(k, len(bank)) - 1 for k in ks], device=features.device)
        nearest = [
            torch.cdist(part, bank).topk(int(index.max()) + 1, dim=1, largest=False).values
            for part in queries.split(chunk)
        ]
        return torch.cat(nearest)[:, index]

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of features (N, D)."""
        return -self.distances(features, [self.k])[:, 0]

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> TuningResult:
        """Keep the k with the best validation AUROC; the AUROC grid is (len(ks),)."""
        with torch.no_grad():
            id_scores, ood_scores = (
                -torch.cat([self.distances(penultimate(model, x), self.ks) for x in batches]).T
                for batches in (id_batches, ood_batches)
            )
        result = TuningResult.from_scores({"k": self.ks}, id_scores, ood_scores)
        self._choose(**result.best)
        return result

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return self.score_features(batch.features)
