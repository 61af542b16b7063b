"""GEN, generalized entropy (Liu, Lochman & Zach, "GEN: Pushing the Limits of Softmax-Based
Out-of-Distribution Detection", CVPR 2023,
https://openaccess.thecvf.com/content/CVPR2023/html/Liu_GEN_Pushing_the_Limits_of_Softmax-Based_Out-of-Distribution_Detection_CVPR_2023_paper.html),
as OpenOOD v1.5's ``GENPostprocessor``: an entropy of the largest softmax probabilities which, for
small γ, registers the small ones (p^γ ≫ −p log p near 0) that Shannon's entropy hardly sees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import nn

from common.features import head, penultimate
from common.ood import Detector, ScoredBatch, TuningResult


def generalized_entropy_grid(
    logits: torch.Tensor, gammas: Sequence[float], ms: Sequence[int]
) -> torch.Tensor:
    """GEN scores (len(gammas), len(ms), N), in float64, of logits (N, C): one sort of the
    probabilities serves every point, a cumulative sum every M."""
    probabilities = logits.double().softmax(dim=1).sort(dim=1, descending=True).values
    columns = [min(m, probabilities.shape[1]) - 1 for m in ms]
    return torch.stack(
        [
            -(probabilities**gamma * (1 - probabilities) ** gamma).cumsum(dim=1)[:, columns].T
            for gamma in gammas
        ]
    )


def generalized_entropy(logits: torch.Tensor, gamma: float = 0.1, m: int = 10) -> torch.Tensor:
    """GEN score (N,), in float64, of logits (N, C): −Σ p^γ (1 − p)^γ over the M largest
    softmax probabilities p (M capped at C)."""
    return generalized_entropy_grid(logits, [gamma], [m])[0, 0]


class GEN(Detector):
    """Detector: :func:`generalized_entropy` of the logits.

    Args:
        gamma, m: fixed hyperparameters (default γ = 0.1, the paper's and OpenOOD's, and
            M = 10: every class of CIFAR-10, as OpenOOD's M = 100 is there; an M above the
            number of classes takes them all), or
        gammas, ms: a grid; :meth:`tune` keeps the pair with the best validation AUROC.

    Example:
        >>> GEN(m=2).score(ScoredBatch(None, None, None, torch.tensor([[0.0, 0.0]])))
        tensor([-1.7411])
    """

    def __init__(
        self,
        gamma: PositiveFloat = 0.1,
        m: PositiveInt = 10,
        gammas: list[PositiveFloat] | None = None,
        ms: list[PositiveInt] | None = None,
    ) -> None:
        self.grid = {"gamma": gammas or [gamma], "m": ms or [m]}
        self._choose(gamma, m)

    def _choose(self, gamma: float, m: int) -> None:
        self.gamma, self.m = gamma, m
        self.name = f"gen_g{gamma:g}_m{m}"

    @property
    def needs_tuning(self) -> bool:
        return len(self.grid["gamma"]) * len(self.grid["m"]) > 1

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> TuningResult:
        """Keep the (γ, M) with the best validation AUROC; the AUROC grid is (|γ|, |M|)."""
        last_layer = head(model)
        with torch.no_grad():
            id_scores, ood_scores = (
                torch.cat(
                    [
                        generalized_entropy_grid(
                            last_layer(penultimate(model, x)), *self.grid.values()
                        ).cpu()
                        for x in batches
                    ],
                    dim=2,
                )
                for batches in (id_batches, ood_batches)
            )
        result = TuningResult.from_scores(self.grid, id_scores, ood_scores)
        self._choose(**result.best)
        return result

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return generalized_entropy(batch.logits, self.gamma, self.m).float()
