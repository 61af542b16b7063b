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


#: The OOD metrics, in table order. Two FPR@95 conventions are in use in the literature and they
#: differ a lot (0.784 vs 0.448 for MSP vs MNIST on the pretrained ResNet-20): both are reported,
#: under names that say which class sets the threshold.
OOD_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95_id_kept", "fpr95_ood_caught")

#: Short column titles of :data:`OOD_METRICS` (↑ higher is better, ↓ lower is better).
OOD_METRIC_TITLES = {
    "auroc": "AUROC ↑",
    "aupr_in": "AUPR-In ↑",
    "aupr_out": "AUPR-Out ↑",
    "fpr95_id_kept": "FPR@95 ID-kept ↓",
    "fpr95_ood_caught": "FPR@95 OOD-caught ↓",
}

#: One line per metric, for the tables' legends.
OOD_METRIC_LEGEND = (
    "AUROC: ID vs OOD, threshold-free. AUPR-In / AUPR-Out: average precision (step-wise, "
    "scikit-learn's definition; OpenOOD integrates the PR curve with trapezoids instead) with ID / "
    "OOD as the positive class. FPR@95 ID-kept: fraction of OOD images accepted at the threshold "
    "that keeps 95 % of ID images (ODIN and energy papers, OpenOOD v1.0). FPR@95 OOD-caught: "
    "fraction of ID images rejected at the threshold that catches 95 % of OOD images (OpenOOD "
    "v1.5 and pytorch-ood, which take OOD as the positive class): compare with their tables."
)


def ood_metrics_and_curves(
    id_scores: torch.Tensor, ood_scores: torch.Tensor
) -> tuple[dict[str, float], OODCurves]:
    """Out-of-distribution detection metrics (:data:`OOD_METRICS`), and the curves they come
    from (so a figure draws them without computing them again).

    Scores are "higher = more in-distribution".

    - ``auroc``: area under the ROC curve (0.5 = chance, 1 = every ID score above every OOD one);
      the same whichever class is positive;
    - ``aupr_in``: average precision with ID as positive and the score as given;
    - ``aupr_out``: average precision with OOD as positive and the score negated;
    - ``fpr95_id_kept``: the fraction of OOD samples accepted as ID at the threshold that accepts
      95 % of the ID samples (ID positive: FPR at 95 % TPR) — Liang et al. (ODIN, 2018), Liu et
      al. (energy, 2020), OpenOOD v1.0;
    - ``fpr95_ood_caught``: the fraction of ID samples rejected at the threshold that rejects
      95 % of the OOD samples (OOD positive: FPR at 95 % TPR) — OpenOOD v1.5
      (``openood/evaluators/metrics.py``: "we treat OOD as positive") and pytorch-ood.

    Both FPRs: lower is better; the threshold is the first one (scanning from the positive
    class's side) that reaches 95 %, as scikit-learn's ``roc_curve`` lists them. AUPR here is
    average precision (a step-wise sum, scikit-learn's ``average_precision_score``); OpenOOD's
    AUPR is the trapezoidal area under the same curve, which is slightly higher.

    Computed with torchmetrics on exact thresholds. Scores are min-max scaled first (an
    order-preserving map): torchmetrics would squash scores outside [0, 1] with a sigmoid, which
    turns large logits or energies into ties.
    """
    scores = torch.cat([id_scores, ood_scores]).double().flatten()
    scores = (scores - scores.min()) / (scores.max() - scores.min()).clamp_min(1e-300)
    is_id = torch.cat([torch.ones(len(id_scores)), torch.zeros(len(ood_scores))]).long()
    fpr, tpr, _ = binary_roc(scores, is_id)
    id_rejected, ood_caught, _ = binary_roc(1 - scores, 1 - is_id)  # OOD positive
    precision, recall, _ = binary_precision_recall_curve(scores, is_id)
    metrics = {
        "auroc": binary_auroc(scores, is_id).item(),
        "aupr_in": binary_average_precision(scores, is_id).item(),
        "aupr_out": binary_average_precision(1 - scores, 1 - is_id).item(),
        "fpr95_id_kept": fpr[torch.argmax((tpr >= 0.95).int())].item(),
        "fpr95_ood_caught": id_rejected[torch.argmax((ood_caught >= 0.95).int())].item(),
    }
    # torchmetrics sums in float32: a perfect separation can read 1.0000001
    metrics = {name: min(max(value, 0.0), 1.0) for name, value in metrics.items()}
    return metrics, OODCurves(fpr, tpr, precision, recall)


def ood_metrics(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> dict[str, float]:
    """The metrics of :func:`ood_metrics_and_curves`, without curves."""
    return ood_metrics_and_curves(id_scores, ood_scores)[0]
