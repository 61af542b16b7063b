"""OOD detectors against independent computations."""

import torch
from torch import nn

from lab4.detectors import (
    KNN,
    Mahalanobis,
    energy,
    max_logit,
    max_softmax,
    odin,
    odin_gradient_sign,
)


def test_logit_detectors_match_their_formulas():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    p = torch.exp(logits[0]) / torch.exp(logits[0]).sum()
    torch.testing.assert_close(max_softmax(logits)[0], p.max())
    torch.testing.assert_close(max_softmax(logits)[1], torch.tensor(1 / 3))
    torch.testing.assert_close(max_logit(logits), torch.tensor([2.0, 0.5]))
    t = 10.0
    expected = t * torch.log(torch.exp(logits / t).sum(dim=1))
    torch.testing.assert_close(energy(logits, t), expected)


def test_odin_perturbation_equals_a_hand_computed_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images = torch.rand(4, 3, 2, 2)
    t, eps = 100.0, 0.01
    # by hand: for a linear model, ∇ₓ CE(Wx/T, ŷ) = Wᵀ(softmax(Wx/T) − onehot(ŷ)) / T
    w = model[1].weight
    with torch.no_grad():
        logits = model(images)
        probs = (logits / t).softmax(dim=1)
        onehot = nn.functional.one_hot(logits.argmax(dim=1), 3).float()
        gradient = ((probs - onehot) @ w / t).view_as(images)
        perturbed = (images - eps * gradient.sign()).clamp(0, 1)
        expected = (model(perturbed) / t).softmax(dim=1).amax(dim=1)
    torch.testing.assert_close(odin_gradient_sign(model, images, t), gradient.sign())
    with torch.inference_mode():  # as inside Lightning's test loop
        torch.testing.assert_close(odin(model, images, t, eps), expected)
    assert all(p.grad is None for p in model.parameters())


def test_mahalanobis_with_identity_covariance_is_the_euclidean_distance():
    torch.manual_seed(0)
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    # points at mean ± unit vectors: per-class covariance is exactly the identity
    offsets = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) * 2**0.5
    features = torch.cat([means[0] + offsets, means[1] + offsets])
    targets = torch.tensor([0] * 4 + [1] * 4)
    detector = Mahalanobis().fit(features, targets)
    torch.testing.assert_close(
        detector.precision, torch.eye(2, dtype=torch.float64), atol=1e-6, rtol=0
    )
    queries = torch.randn(5, 2) * 5
    euclidean = torch.cdist(queries, means).pow(2).amin(dim=1)
    torch.testing.assert_close(detector.score_features(queries), -euclidean)


def test_knn_scores_the_kth_nearest_normalised_neighbour():
    bank = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])  # normalised: the unit axes
    detector = KNN(k=2).fit(bank)
    query = torch.tensor([[5.0, 0.0]])  # normalised (1, 0): distances 0, √2, 2
    torch.testing.assert_close(detector.score_features(query), torch.tensor([-(2**0.5)]))
