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
    fpr, tpr, _ = roc_curve(is_id, scores)
    return {
        "auroc": roc_auc_score(is_id, scores),
        "aupr_in": average_precision_score(is_id, scores),
        "aupr_out": average_precision_score(1 - is_id, -scores),
        "fpr95": fpr[np.argmax(tpr >= 0.95)],
    }


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
    assert separated == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}
    reversed_ = ood_metrics(torch.tensor([0.0, 1.0]), torch.tensor([3.0, 4.0]))
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 1.0
    # 20 ID scores 1..20, OOD scores 1.5 and 19.5: accepting 95 % of ID (19 of 20) means a
    # threshold of 2, which accepts one of the two OOD samples
    half = ood_metrics(torch.arange(1.0, 21.0), torch.tensor([1.5, 19.5]))
    assert half["fpr95"] == 0.5
    assert half["auroc"] == pytest.approx((19 + 1) / 40)


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
    assert curves.fpr[torch.argmax((curves.tpr >= 0.95).int())] == metrics["fpr95"]
