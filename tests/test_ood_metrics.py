"""OOD metrics against scikit-learn and on hand-made cases."""

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from common.metrics import ood_metrics, ood_metrics_and_curves


def sklearn_reference(id_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    scores = np.concatenate([id_scores, ood_scores])
    is_id = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])
    fpr, tpr, _ = roc_curve(is_id, scores)  # ID positive
    id_rejected, ood_caught, _ = roc_curve(1 - is_id, -scores)  # OOD positive (OpenOOD v1.5)
    return {
        "auroc": roc_auc_score(is_id, scores),
        "aupr_in": average_precision_score(is_id, scores),
        "aupr_out": average_precision_score(1 - is_id, -scores),
        "fpr95_id_kept": fpr[np.argmax(tpr >= 0.95)],
        "fpr95_ood_caught": id_rejected[np.argmax(ood_caught >= 0.95)],
    }


def counted_fprs(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[float, float]:
    """Both FPR@95 by their definitions, counting samples over every candidate threshold: the
    fraction of OOD accepted (score ≥ t) at the highest t that accepts ≥ 95 % of ID, and the
    fraction of ID rejected (score ≤ t) at the lowest t that rejects ≥ 95 % of OOD."""
    thresholds = np.unique(np.concatenate([id_scores, ood_scores]))
    kept = max(t for t in thresholds if (id_scores >= t).mean() >= 0.95)
    caught = min(t for t in thresholds if (ood_scores <= t).mean() >= 0.95)
    return (ood_scores >= kept).mean(), (id_scores <= caught).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn_on_random_scores(seed):
    generator = torch.Generator().manual_seed(seed)
    id_scores = torch.randn(500, generator=generator) * 30 + 20  # energies: far outside [0, 1]
    ood_scores = torch.randn(300, generator=generator) * 30
    ood_scores[:20] = id_scores[:20]  # ties between the sets
    ours = ood_metrics(id_scores, ood_scores)
    reference = sklearn_reference(id_scores.numpy(), ood_scores.numpy())
    assert ours == pytest.approx(reference, abs=1e-6)


def test_metrics_on_hand_made_cases():
    separated = ood_metrics(torch.tensor([3.0, 4.0, 5.0]), torch.tensor([0.0, 1.0]))
    assert separated == {
        "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95_id_kept": 0.0, "fpr95_ood_caught": 0.0
    }  # fmt: skip
    reversed_ = ood_metrics(torch.tensor([0.0, 1.0]), torch.tensor([3.0, 4.0]))
    assert reversed_["auroc"] == 0.0
    assert reversed_["fpr95_id_kept"] == reversed_["fpr95_ood_caught"] == 1.0
    # 20 ID scores 1..20, OOD scores 1.5 and 19.5: accepting 95 % of ID (19 of 20) means a
    # threshold of 2, which accepts one of the two OOD samples; catching 95 % of OOD (both)
    # means rejecting everything up to 19.5, i.e. 19 of the 20 ID samples
    half = ood_metrics(torch.arange(1.0, 21.0), torch.tensor([1.5, 19.5]))
    assert half["fpr95_id_kept"] == 0.5
    assert half["fpr95_ood_caught"] == pytest.approx(19 / 20)
    assert half["auroc"] == pytest.approx((19 + 1) / 40)


@pytest.mark.parametrize("seed", [0, 1])
def test_both_fpr95_conventions_follow_their_definitions(seed):
    """The two FPR@95 conventions differ, and each equals its definition counted directly."""
    generator = torch.Generator().manual_seed(seed)
    id_scores = torch.randn(300, generator=generator) + 1.5
    ood_scores = torch.randn(200, generator=generator) * 2  # wide: the two tails differ
    metrics = ood_metrics(id_scores, ood_scores)
    id_kept, ood_caught = counted_fprs(id_scores.double().numpy(), ood_scores.double().numpy())
    assert metrics["fpr95_id_kept"] == pytest.approx(id_kept)
    assert metrics["fpr95_ood_caught"] == pytest.approx(ood_caught)
    assert abs(metrics["fpr95_id_kept"] - metrics["fpr95_ood_caught"]) > 0.05


def test_curves_are_scikit_learns_and_carry_the_metrics():
    generator = torch.Generator().manual_seed(0)
    id_scores = torch.randn(400, generator=generator) * 30 + 20
    ood_scores = torch.randn(250, generator=generator) * 30
    ood_scores[:10] = id_scores[:10]
    metrics, curves = ood_metrics_and_curves(id_scores, ood_scores)
    assert metrics == ood_metrics(id_scores, ood_scores)
    scores = np.concatenate([id_scores.numpy(), ood_scores.numpy()])
    is_id = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])
    fpr, tpr, _ = roc_curve(is_id, scores, drop_intermediate=False)
    precision, recall, _ = precision_recall_curve(is_id, scores)
    for ours, reference in [(curves.fpr, fpr), (curves.tpr, tpr),
                            (curves.precision, precision), (curves.recall, recall)]:  # fmt: skip
        np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)
    # the figure's curves are the ones the numbers come from
    assert torch.trapezoid(curves.tpr, curves.fpr).item() == pytest.approx(metrics["auroc"])
    average_precision = -torch.sum(torch.diff(curves.recall) * curves.precision[:-1]).item()
    assert average_precision == pytest.approx(metrics["aupr_in"], abs=1e-6)
    assert curves.fpr[torch.argmax((curves.tpr >= 0.95).int())] == metrics["fpr95_id_kept"]
