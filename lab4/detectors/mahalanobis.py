"""Mahalanobis distance (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution
Samples and Adversarial Attacks", NeurIPS 2018, https://arxiv.org/abs/1807.03888), on the
penultimate features, without the paper's input preprocessing and layer ensemble."""

from __future__ import annotations

import torch
from torch import nn

from common.ood import Detector, ScoredBatch


class Mahalanobis(Detector):
    """Detector: −min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c) of penultimate features f, with class means μ_c
    and one shared covariance Σ fitted on ID training features (in float64; Σ⁻¹ a
    pseudo-inverse, so collinear features are fine).

    Example:
        >>> detector = Mahalanobis().fit(train_features, train_targets)  # (N, D), (N,)
        >>> detector.score_features(test_features).shape
        torch.Size([M])
    """

    name = "mahalanobis"
    needs_fitting = True

    def fit(
        self, features: torch.Tensor, targets: torch.Tensor, head: nn.Linear | None = None
    ) -> Mahalanobis:
        features = features.double()
        classes = targets.unique()
        self.means = torch.stack([features[targets == c].mean(dim=0) for c in classes])
        centred = features - self.means[torch.searchsorted(classes, targets)]
        covariance = centred.T @ centred / len(features)
        self.precision = torch.linalg.pinv(covariance, hermitian=True)
        return self

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of features (N, D)."""
        means, precision = self.means.to(features.device), self.precision.to(features.device)
        diff = features.double()[:, None, :] - means[None]  # (N, C, D)
        distances = torch.einsum("ncd,de,nce->nc", diff, precision, diff)
        return -distances.amin(dim=1).float()

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return self.score_features(batch.features)
