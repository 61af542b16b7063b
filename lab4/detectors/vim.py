"""ViM, virtual-logit matching (Wang et al., "ViM: Out-Of-Distribution with Virtual-logit
Matching", CVPR 2022, https://arxiv.org/abs/2203.10807), as OpenOOD v1.5's ``VIMPostprocessor``:
the part of a feature outside the principal subspace of the ID training features, scaled to the
logits, is a virtual OOD logit subtracted from the energy."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch
from jsonargparse.typing import PositiveInt
from torch import nn

from common.features import penultimate
from common.ood import Detector, ScoredBatch, TuningResult, require_head

log = logging.getLogger(__name__)


def vim(
    logits: torch.Tensor,
    features: torch.Tensor,
    origin: torch.Tensor,
    residual: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """ViM score (N,), in float64: logsumexp(z) − α‖(x − u)R‖ of logits z (N, C) and features
    x (N, D), with origin u (D,) and R (D, D − dim) the basis of the residual subspace."""
    virtual_logit = alpha * ((features.double() - origin) @ residual).norm(dim=1)
    return torch.logsumexp(logits.double(), dim=1) - virtual_logit


class ViM(Detector):
    """Detector: :func:`vim` with, from the last layer (W, b), the origin u = −W⁺b (the feature
    whose logits are all zero) and, from ID training features x (:meth:`fit`), R the
    eigenvectors of (x − u)ᵀ(x − u) / N beyond the ``dim`` largest and α = mean max logit /
    mean ‖(x − u)R‖, so that the virtual logit has the scale of the real ones. In float64.

    W and b are copied at :meth:`fit`: the scores do not depend on the module's later state.

    Args:
        dim: dimension of the principal subspace, below the feature dimension (default: half
            of it, the paper's rule for small feature dimensions; the name is ``vim`` until
            :meth:`fit` knows the dimension, then e.g. ``vim32``), or
        dims: a grid; :meth:`tune` keeps the dim with the best validation AUROC (one
            eigendecomposition serves every dim). Dims that leave no residual subspace for a
            network (≥ its feature dimension, or ≥ the rank of the training features) are left
            out of the grid with a warning, so one grid serves networks of different widths.

    Example:
        >>> detector = ViM(dim=32).fit(train_features, train_targets, head=head(network))
        >>> detector.score_features(test_features).shape  # (M, D) → (M,)
        torch.Size([M])
    """

    needs_fitting = True

    def __init__(
        self, dim: PositiveInt | None = None, dims: list[PositiveInt] | None = None
    ) -> None:
        self.dims: list[int | None] = list(dims or [dim])
        self._choose(self.dims[0])  # until tuned

    def _choose(self, dim: int | None) -> None:
        self.dim = dim
        self.name = "vim" if dim is None else f"vim{dim}"

    @property
    def needs_tuning(self) -> bool:
        return len(self.dims) > 1

    def fit(
        self,
        features: torch.Tensor,
        targets: torch.Tensor | None = None,
        head: nn.Linear | None = None,
    ) -> ViM:
        head = require_head(head, "ViM")
        features = features.double()
        size = features.shape[1]
        self.dims = [size // 2 if d is None else d for d in self.dims]  # the default dim
        self._choose(size // 2 if self.dim is None else self.dim)
        candidates = sorted({*self.dims, self.dim})
        self.weight = head.weight.detach().double().cpu()
        self.bias = (
            torch.zeros(len(self.weight), dtype=torch.float64)
            if head.bias is None
            else head.bias.detach().double().cpu()
        )
        self.origin = -torch.linalg.pinv(self.weight) @ self.bias
        centred = features - self.origin
        eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / len(centred))
        self.eigenvectors = eigenvectors[:, eigenvalues.argsort(descending=True)]
        # α of every candidate dim, from the training features (not kept); a dim must leave
        # something outside the principal subspace (dim < D, and fewer than the features' rank)
        below = [d for d in candidates if d < size]
        residual = self.residual_norms(features, below).mean(dim=0)
        floor = 1e-9 * self.residual_norms(features, [0]).mean()
        usable = {d: r for d, r in zip(below, residual.tolist(), strict=True) if r > floor}
        left_out = [d for d in candidates if d not in usable]
        if left_out and (len(candidates) == 1 or not usable):
            raise ValueError(
                f"ViM dims {left_out} leave no residual for the feature dimension {size} and the "
                f"{len(features)} ID training features: choose dims below both"
            )
        if left_out:  # a grid shared by networks of different feature dimensions
            log.warning(
                "ViM: dims %s left out of the grid (feature dimension %d, %d training "
                "features): no residual subspace",
                left_out,
                size,
                len(features),
            )
            self.dims = [d for d in self.dims if d in usable]
            if self.dim not in usable:
                self._choose(self.dims[0])
        residual = torch.tensor(list(usable.values()), dtype=torch.float64)
        candidates = list(usable)
        max_logit = self.logits(features).amax(dim=1).mean()
        self.alphas = dict(zip(candidates, (max_logit / residual).tolist(), strict=True))
        return self

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of features (N, D) by the last layer copied at :meth:`fit`."""
        device = features.device
        return nn.functional.linear(features.double(), self.weight.to(device), self.bias.to(device))

    def residual_norms(self, features: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
        """‖(x − u)R‖ (N, len(dims)) for every dim at once: the root of the squared
        eigenbasis coordinates of x − u summed from the last one."""
        device = features.device
        coordinates = (features.double() - self.origin.to(device)) @ self.eigenvectors.to(device)
        tails = coordinates.pow(2).flip(1).cumsum(dim=1).flip(1)  # [:, d] = Σ_{j ≥ d} c_j²
        return tails[:, list(dims)].sqrt()

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of features (N, D)."""
        residual = self.eigenvectors[:, self.dim :].to(features.device)
        origin = self.origin.to(features.device)
        return vim(self.logits(features), features, origin, residual, self.alphas[self.dim]).float()

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> TuningResult:
        """Keep the dim with the best validation AUROC; the AUROC grid is (len(dims),)."""
        alphas = torch.tensor([self.alphas[d] for d in self.dims], dtype=torch.float64)

        def scores(features: torch.Tensor) -> torch.Tensor:  # (len(dims), N)
            energy = torch.logsumexp(self.logits(features), dim=1)
            virtual_logits = self.residual_norms(features, self.dims) * alphas.to(features.device)
            return (energy[:, None] - virtual_logits).T.float().cpu()

        with torch.no_grad():
            id_scores, ood_scores = (
                torch.cat([scores(penultimate(model, x)) for x in batches], dim=1)
                for batches in (id_batches, ood_batches)
            )
        result = TuningResult.from_scores({"dim": self.dims}, id_scores, ood_scores)
        self._choose(**result.best)
        return result

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return self.score_features(batch.features)
