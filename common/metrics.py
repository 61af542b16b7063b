"""Evaluation metrics the labs share (beyond torchmetrics' own)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_precision_recall_curve,
    binary_roc,
)


@torch.no_grad()
def explanation_confidence(
    model: nn.Module, images: torch.Tensor, saliency: torch.Tensor, classes: torch.Tensor
) -> dict[str, float]:
    """Average Drop and Increase in Confidence of saliency maps (Chattopadhay et al.,
    Grad-CAM++, 2018), as torch-cam computes them.

    Each image is multiplied by its saliency map (N, H, W in [0, 1]); with ``Y`` the softmax
    probability of the explained class on the image and ``O`` on the masked image:
    Average Drop = mean(max(0, Y − O) / Y) (lower is better: the map keeps what the class needs),
    Increase in Confidence = fraction of images with O > Y (higher is better).
    """
    rows = torch.arange(len(classes), device=images.device)
    before = model(images).softmax(dim=1)[rows, classes]
    after = model(images * saliency[:, None]).softmax(dim=1)[rows, classes]
    return {
        "average_drop": ((before - after).clamp_min(0) / before).mean().item(),
        "increase_in_confidence": (after > before).float().mean().item(),
    }


@dataclass(frozen=True)
class OODCurves:
    """ROC and precision-recall curves of ID vs one OOD set, ID positive (for the figures)."""

    fpr: torch.Tensor  #: OOD accepted, per threshold
    tpr: torch.Tensor  #: ID accepted, per threshold
    precision: torch.Tensor  #: ID precision, per threshold
    recall: torch.Tensor  #: ID recall, per threshold


def ood_metrics_and_curves(
    id_scores: torch.Tensor, ood_scores: torch.Tensor
) -> tuple[dict[str, float], OODCurves]:
    """Out-of-distribution detection metrics with OpenOOD's conventions, and the curves they
    come from (so a figure draws them without computing them again).

    Scores are "higher = more in-distribution". In-distribution samples are the positive class:

    - ``auroc``: area under the ROC curve (0.5 = chance, 1 = every ID score above every OOD one);
    - ``aupr_in``: average precision with ID as positive and the score as given;
    - ``aupr_out``: average precision with OOD as positive and the score negated;
    - ``fpr95``: the fraction of OOD samples accepted as ID at the threshold that accepts 95 % of
      the ID samples (FPR at 95 % TPR; lower is better).

    Computed with torchmetrics on exact thresholds. Scores are min-max scaled first (an
    order-preserving map): torchmetrics would squash scores outside [0, 1] with a sigmoid, which
    turns large logits or energies into ties.
    """
    scores = torch.cat([id_scores, ood_scores]).double().flatten()
    scores = (scores - scores.min()) / (scores.max() - scores.min()).clamp_min(1e-300)
    is_id = torch.cat([torch.ones(len(id_scores)), torch.zeros(len(ood_scores))]).long()
    fpr, tpr, _ = binary_roc(scores, is_id)
    precision, recall, _ = binary_precision_recall_curve(scores, is_id)
    metrics = {
        "auroc": binary_auroc(scores, is_id).item(),
        "aupr_in": binary_average_precision(scores, is_id).item(),
        "aupr_out": binary_average_precision(1 - scores, 1 - is_id).item(),
        "fpr95": fpr[torch.argmax((tpr >= 0.95).int())].item(),
    }
    # torchmetrics sums in float32: a perfect separation can read 1.0000001
    metrics = {name: min(max(value, 0.0), 1.0) for name, value in metrics.items()}
    return metrics, OODCurves(fpr, tpr, precision, recall)


def ood_metrics(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR@95 of :func:`ood_metrics_and_curves`, without curves."""
    return ood_metrics_and_curves(id_scores, ood_scores)[0]
