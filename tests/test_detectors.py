"""OOD detectors against independent computations, and the contract they share."""

import inspect

import pytest
import torch
from jsonargparse import ArgumentParser
from torch import nn

import lab4.detectors
from common.metrics import ood_metrics
from common.ood import Detector, ScoredBatch, TuningResult
from lab4.detectors import (
    KNN,
    ODIN,
    Energy,
    Mahalanobis,
    MaxLogit,
    MaxSoftmax,
    energy,
    max_logit,
    max_softmax,
    odin,
    odin_gradient_sign,
    odin_grid,
)


def linear_model(inputs: int = 12, classes: int = 3) -> nn.Module:
    """A network of this project's layout (``features`` → ``classifier``), tiny."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.features = nn.Flatten()
    model.classifier = nn.Sequential(nn.Identity(), nn.Linear(inputs, classes))
    return model


def test_every_exported_detector_follows_the_base_contract():
    classes = [
        value
        for value in vars(lab4.detectors).values()
        if inspect.isclass(value) and value.__module__.startswith("lab4.detectors.")
    ]
    assert len(classes) == 7
    for cls in classes:
        assert issubclass(cls, Detector), cls
        assert "score" in vars(cls), f"{cls.__name__} must implement score"
        # a fitted or tuned capability is declared, never inferred from the methods present
        assert ("fit" in vars(cls)) == cls.needs_fitting, cls
        assert ("tune" in vars(cls)) == ("needs_tuning" in vars(cls)), cls
    with pytest.raises(TypeError):
        Detector()  # the base has no score


def test_higher_scores_mean_more_in_distribution():
    """A confident prediction (ID-like) outscores a flat one (OOD-like) for the logit detectors,
    and a feature near the training bank outscores a far one for the feature detectors."""
    logits = torch.tensor([[8.0, 0.0, 0.0], [0.3, 0.2, 0.1]])
    batch = ScoredBatch(None, None, None, logits)
    for detector in (MaxSoftmax(), MaxSoftmax(10.0), MaxLogit(), Energy(), Energy(10.0)):
        id_score, ood_score = detector.score(batch)
        assert id_score > ood_score, detector.name
    train = torch.randn(200, 4) * 0.1 + torch.tensor([5.0, 0.0, 0.0, 0.0])
    targets = torch.zeros(200, dtype=torch.long)
    features = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
    for detector in (Mahalanobis(), KNN(k=5)):
        id_score, ood_score = detector.fit(train, targets).score(
            ScoredBatch(None, None, features, None)
        )
        assert id_score > ood_score, detector.name


def test_logit_detectors_match_their_formulas():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    p = torch.exp(logits[0]) / torch.exp(logits[0]).sum()
    torch.testing.assert_close(max_softmax(logits)[0], p.max())
    torch.testing.assert_close(max_softmax(logits)[1], torch.tensor(1 / 3))
    torch.testing.assert_close(max_logit(logits), torch.tensor([2.0, 0.5]))
    t = 10.0
    expected = t * torch.log(torch.exp(logits / t).sum(dim=1))
    torch.testing.assert_close(energy(logits, t), expected)
    batch = ScoredBatch(None, None, None, logits)
    torch.testing.assert_close(Energy(t).score(batch), expected)
    assert (MaxSoftmax().name, MaxSoftmax(2.0).name, Energy(10.0).name) == (
        "msp",
        "msp_T2",
        "energy_T10",
    )


def test_odin_perturbation_equals_a_hand_computed_one():
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
        batch = ScoredBatch(model, images.clone(), None, None)
        torch.testing.assert_close(ODIN(t, eps).score(batch), expected)
    assert all(p.grad is None for p in model.parameters())


def test_odin_grid_shares_gradients_and_equals_odin_at_every_point():
    model = linear_model()
    batches = [torch.rand(6, 3, 2, 2), torch.rand(4, 3, 2, 2)]
    temperatures, epsilons = [1.0, 100.0], [0.0, 0.01, 0.05]
    grid = odin_grid(model, batches, temperatures, epsilons)
    assert grid.shape == (2, 3, 10)
    for i, t in enumerate(temperatures):
        for j, e in enumerate(epsilons):  # independent: the plain function, one point at a time
            expected = torch.cat([odin(model, images, t, e) for images in batches])
            torch.testing.assert_close(grid[i, j], expected)


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


def test_tuning_result_reads_the_best_point_of_the_grid():
    grid = {"temperature": [1.0, 10.0], "epsilon": [0.0, 0.1, 0.2]}
    id_scores = torch.zeros(2, 3, 4)
    id_scores[1, 2] = 1.0  # only (T=10, ε=0.2) separates ID from OOD
    result = TuningResult.from_scores(grid, id_scores, torch.zeros(2, 3, 5))
    expected = torch.full((2, 3), 0.5)
    expected[1, 2] = 1.0
    torch.testing.assert_close(result.auroc, expected)
    assert result.best == {"temperature": 10.0, "epsilon": 0.2}
    ties = TuningResult({"k": [3, 1, 2]}, torch.tensor([0.5, 0.9, 0.9]))
    assert ties.best == {"k": 1}  # the first best point in grid order


def test_odin_tuning_keeps_the_grid_point_with_the_best_validation_auroc():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    id_images, ood_images = torch.rand(8, 3, 2, 2), torch.rand(6, 3, 2, 2) * 0.5
    temperatures, epsilons = [1.0, 10.0], [0.0, 0.05, 0.2]
    detector = ODIN(temperatures=temperatures, epsilons=epsilons)
    assert detector.needs_tuning and not ODIN().needs_tuning
    result = detector.tune(model, [id_images], [ood_images])
    # independent: score every pair separately with the plain function
    expected = torch.tensor(
        [[ood_metrics(odin(model, id_images, t, e), odin(model, ood_images, t, e))["auroc"]
          for e in epsilons] for t in temperatures]
    )  # fmt: skip
    torch.testing.assert_close(result.auroc, expected)
    assert result.grid == {"temperature": temperatures, "epsilon": epsilons}
    best = divmod(int(expected.argmax()), len(epsilons))
    assert (detector.temperature, detector.epsilon) == (temperatures[best[0]], epsilons[best[1]])
    assert detector.name == f"odin_T{detector.temperature:g}_eps{detector.epsilon:g}"


def test_knn_tuning_keeps_the_k_with_the_best_validation_auroc():
    model = linear_model(inputs=8)
    bank = torch.randn(40, 8)
    id_images, ood_images = torch.randn(10, 2, 4) + 0.5, torch.randn(12, 2, 4)
    detector = KNN(ks=[1, 3, 10]).fit(bank)
    assert detector.needs_tuning and not KNN(k=3).needs_tuning
    result = detector.tune(model, [id_images], [ood_images])
    expected = []
    for k in (1, 3, 10):  # independent: one fixed-k detector each
        single = KNN(k).fit(bank)
        scores = [single.score_features(x.flatten(1)) for x in (id_images, ood_images)]
        expected.append(ood_metrics(*scores)["auroc"])
    torch.testing.assert_close(result.auroc, torch.tensor(expected))
    assert detector.k == (1, 3, 10)[int(torch.tensor(expected).argmax())]
    assert detector.name == f"knn{detector.k}"


@pytest.mark.parametrize(
    "init_args",
    [
        {"class_path": "lab4.detectors.KNN", "init_args": {"k": 0}},
        {"class_path": "lab4.detectors.KNN", "init_args": {"ks": [5, -1]}},
        {"class_path": "lab4.detectors.ODIN", "init_args": {"temperature": 0}},
        {"class_path": "lab4.detectors.ODIN", "init_args": {"epsilons": [0, -0.001]}},
        {"class_path": "lab4.detectors.MaxSoftmax", "init_args": {"temperature": -1}},
        {"class_path": "lab4.detectors.Energy", "init_args": {"temperature": 0}},
    ],
)
def test_non_positive_hyperparameters_are_rejected_when_the_config_is_parsed(init_args):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--detector", type=Detector)
    with pytest.raises(Exception, match="does not conform to restriction"):
        parser.parse_args([f"--detector={init_args}".replace("'", '"')])
    valid = {**init_args, "init_args": {}}
    assert parser.parse_args([f"--detector={valid}".replace("'", '"')]).detector


def test_a_zero_odin_step_is_accepted():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--detector", type=Detector)
    config = '{"class_path": "lab4.detectors.ODIN", "init_args": {"epsilons": [0, 0.001]}}'
    detector = parser.instantiate_classes(parser.parse_args([f"--detector={config}"])).detector
    assert detector.grid["epsilon"] == [0, 0.001]
