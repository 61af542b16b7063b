"""OOD detectors against independent computations."""

import torch
from torch import nn

from lab4.detectors import (
    KNN,
    ODIN,
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


def test_odin_tuning_keeps_the_grid_point_with_the_best_validation_auroc():
    from common.metrics import ood_metrics
    from lab4.detectors import odin_grid

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    id_images, ood_images = torch.rand(8, 3, 2, 2), torch.rand(6, 3, 2, 2) * 0.5
    temperatures, epsilons = [1.0, 10.0], [0.0, 0.05, 0.2]
    detector = ODIN(temperatures=temperatures, epsilons=epsilons)
    assert detector.needs_tuning and not ODIN().needs_tuning
    auroc = detector.tune(model, [id_images], [ood_images])
    # independent: score every pair separately with the plain function
    expected = torch.tensor(
        [[ood_metrics(odin(model, id_images, t, e), odin(model, ood_images, t, e))["auroc"]
          for e in epsilons] for t in temperatures]
    )  # fmt: skip
    torch.testing.assert_close(auroc, expected)
    best = divmod(int(expected.argmax()), len(epsilons))
    assert (detector.temperature, detector.epsilon) == (temperatures[best[0]], epsilons[best[1]])
    assert detector.name == f"odin_T{detector.temperature:g}_eps{detector.epsilon:g}"
    torch.testing.assert_close(
        odin_grid(model, [id_images], temperatures, epsilons)[1, 2],
        odin(model, id_images, 10.0, 0.2),
    )


def test_knn_tuning_keeps_the_k_with_the_best_validation_auroc():
    from common.metrics import ood_metrics

    torch.manual_seed(0)
    model = nn.Sequential()
    model.features = nn.Flatten()
    model.classifier = nn.Sequential(nn.Identity(), nn.Linear(8, 3))
    bank = torch.randn(40, 8)
    id_images, ood_images = torch.randn(10, 2, 4) + 0.5, torch.randn(12, 2, 4)
    detector = KNN(ks=[1, 3, 10]).fit(bank)
    auroc = detector.tune(model, [id_images], [ood_images])
    expected = []
    for k in (1, 3, 10):  # independent: one fixed-k detector each
        single = KNN(k).fit(bank)
        scores = [single.score_features(x.flatten(1)) for x in (id_images, ood_images)]
        expected.append(ood_metrics(*scores)["auroc"])
    torch.testing.assert_close(auroc, torch.tensor(expected))
    assert detector.k == (1, 3, 10)[int(torch.tensor(expected).argmax())]
    assert detector.name == f"knn{detector.k}"
