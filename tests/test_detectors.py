"""OOD detectors against independent computations, and the contract they share."""

import inspect

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser
from scipy.special import logsumexp
from sklearn.covariance import EmpiricalCovariance
from torch import nn

import lab4.detectors
from common.features import head
from common.metrics import ood_metrics
from common.ood import Detector, ScoredBatch, TuningResult
from lab4.detectors import (
    GEN,
    KNN,
    ODIN,
    Energy,
    Mahalanobis,
    MaxLogit,
    MaxSoftmax,
    ReAct,
    ViM,
    energy,
    generalized_entropy,
    max_logit,
    max_softmax,
    odin,
    odin_gradient_sign,
    odin_grid,
    percentiles,
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
    assert len(classes) == 10
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
    for detector in (MaxSoftmax(), MaxSoftmax(10.0), MaxLogit(), Energy(), Energy(10.0), GEN()):
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
        {"class_path": "lab4.detectors.ViM", "init_args": {"dim": 0}},
        {"class_path": "lab4.detectors.ViM", "init_args": {"dims": [4, 0]}},
        {"class_path": "lab4.detectors.ReAct", "init_args": {"percentile": 0}},
        {"class_path": "lab4.detectors.ReAct", "init_args": {"percentiles": [90, 101]}},
        {"class_path": "lab4.detectors.GEN", "init_args": {"gamma": 0}},
        {"class_path": "lab4.detectors.GEN", "init_args": {"ms": [10, 0]}},
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


# --- ODIN without clamping ------------------------------------------------------------------


def test_unclamped_odin_equals_the_formula_and_differs_at_the_image_border():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    t, eps = 10.0, 0.05
    w = model[1].weight
    images = torch.randint(0, 2, (6, 3, 2, 2)).float()  # every pixel at 0 or 1
    with torch.no_grad():  # by hand, as in the test above, without the clamp
        logits = model(images)
        onehot = nn.functional.one_hot(logits.argmax(dim=1), 3).float()
        gradient = ((logits / t).softmax(dim=1) - onehot) @ w / t
        perturbed = images - eps * gradient.sign().view_as(images)
        expected = (model(perturbed) / t).softmax(dim=1).amax(dim=1)
    unclamped = odin(model, images, t, eps, clamp=False)
    torch.testing.assert_close(unclamped, expected)
    assert not torch.allclose(unclamped, odin(model, images, t, eps))  # clamp=True differs
    batch = ScoredBatch(model, images, None, None)
    torch.testing.assert_close(ODIN(t, eps, clamp=False).score(batch), expected)
    grid = odin_grid(model, [images], [t], [0.0, eps], clamp=False)
    torch.testing.assert_close(grid[0, 1], expected)
    assert ODIN(clamp=False).name == "odin_T1000_eps0.0014_unclamped"
    assert ODIN().name == "odin_T1000_eps0.0014"


# --- ViM, ReAct, GEN against numpy ----------------------------------------------------------


def vim_numpy(train, test, weight, bias, dim):
    """ViM as OpenOOD's VIMPostprocessor computes it (scikit-learn covariance, numpy)."""
    train, test, weight, bias = (x.double().numpy() for x in (train, test, weight, bias))
    origin = -np.linalg.pinv(weight) @ bias
    covariance = EmpiricalCovariance(assume_centered=True).fit(train - origin).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    residual = eigenvectors[:, np.argsort(-eigenvalues)[dim:]]
    train_logits = train @ weight.T + bias
    alpha = (
        train_logits.max(axis=1).mean() / np.linalg.norm((train - origin) @ residual, axis=1).mean()
    )
    virtual = alpha * np.linalg.norm((test - origin) @ residual, axis=1)
    return torch.from_numpy(logsumexp(test @ weight.T + bias, axis=1) - virtual).float()


def react_numpy(train, test, weight, bias, percentile):
    threshold = np.percentile(train.numpy().ravel(), percentile)
    logits = np.minimum(test.double().numpy(), threshold) @ weight.double().numpy().T
    return torch.from_numpy(logsumexp(logits + bias.double().numpy(), axis=1)).float()


def gen_numpy(logits, gamma, m):
    z = logits.double().numpy()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = np.sort(p / p.sum(axis=1, keepdims=True), axis=1)[:, ::-1][:, :m]
    return torch.from_numpy(-(p**gamma * (1 - p) ** gamma).sum(axis=1)).float()


def test_vim_matches_openood_computed_with_numpy():
    torch.manual_seed(0)
    layer = nn.Linear(8, 3)
    train, test = torch.randn(60, 8).relu() * 3, torch.randn(7, 8).relu() * 3
    for dim in (1, 3, 6):
        detector = ViM(dim=dim).fit(train, None, head=layer)
        expected = vim_numpy(train, test, layer.weight.detach(), layer.bias.detach(), dim)
        batch = ScoredBatch(None, None, test, layer(test))
        torch.testing.assert_close(detector.score(batch), expected)
        assert detector.name == f"vim{dim}"
    default = ViM()
    assert default.name == "vim"
    default.fit(train, None, head=layer)  # the paper's rule: half the feature dimension
    assert (default.dim, default.name) == (4, "vim4")


def test_vim_rejects_a_dim_it_cannot_use_and_drops_unusable_grid_points(caplog):
    layer = nn.Linear(8, 3)
    features = torch.randn(40, 8)
    with pytest.raises(ValueError, match=r"dims \[8\] leave no residual .* dimension 8"):
        ViM(dim=8).fit(features, None, head=layer)
    with pytest.raises(ValueError, match=r"dims \[8, 9\] leave no residual"):
        ViM(dims=[8, 9]).fit(features, None, head=layer)  # nothing left of the grid
    with pytest.raises(ValueError, match="last layer"):
        ViM().fit(features, None)
    with pytest.raises(ValueError, match=r"dims \[5\] leave no residual .* 4 ID training"):
        ViM(dim=5).fit(features[:4], None, head=layer)  # 4 features span ≤ 4 dimensions
    # a grid shared by wider networks: the dims this one cannot use are left out, with a warning
    grid = ViM(dims=[2, 6, 9]).fit(features, None, head=layer)
    assert grid.dims == [2, 6] and grid.name == "vim2"
    assert "dims [9] left out of the grid" in caplog.text
    assert grid.needs_tuning


def test_react_matches_numpy_percentile_and_energy():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    train, test = torch.randn(31, 6).relu() * 2, torch.randn(9, 6).relu() * 4
    for percentile in (50.0, 90.0, 99.5):
        detector = ReAct(percentile).fit(train, None, head=layer)
        expected = react_numpy(train, test, layer.weight.detach(), layer.bias.detach(), percentile)
        torch.testing.assert_close(detector.score(ScoredBatch(None, None, test, None)), expected)
        assert detector.name == f"react{percentile:g}"
    assert ReAct().name == "react90"
    with pytest.raises(ValueError, match="last layer"):
        ReAct().fit(train, None)
    values = torch.randn(5, 7, 3)  # not a round number of elements: interpolated ranks
    q = [0.5, 10.0, 33.3, 50.0, 90.0, 100.0]
    expected = torch.from_numpy(np.percentile(values.numpy().ravel(), q).astype(np.float64))
    torch.testing.assert_close(percentiles(values, q), expected)


def test_gen_matches_numpy_sort():
    torch.manual_seed(0)
    logits = torch.randn(6, 7) * 3
    for gamma, m in ((0.1, 10), (0.5, 3), (2.0, 1)):
        expected = gen_numpy(logits, gamma, m)  # m = 10 > 7 classes: all of them
        torch.testing.assert_close(generalized_entropy(logits, gamma, m).float(), expected)
        batch = ScoredBatch(None, None, None, logits)
        torch.testing.assert_close(GEN(gamma, m).score(batch), expected)
    assert (GEN().name, GEN(0.5, 3).name) == ("gen_g0.1_m10", "gen_g0.5_m3")


def test_vim_and_react_score_an_in_distribution_feature_higher():
    """ViM: the outlier has the logits of an ID feature plus a component outside the ID
    subspace. ReAct: one unit far above its ID range inflates the outlier's logit above the ID
    one's (the energy is fooled); clipped, it falls below."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1, 0, 1], [0, 0, 1, 0]]))
        layer.bias.zero_()
    centres = torch.tensor([[3.0, 3, 0, 0], [0, 0, 3, 0]])
    train = (centres.repeat(50, 1) + torch.randn(100, 4) * 0.2).relu()
    in_distribution = torch.tensor([3.0, 3, 0, 0])
    vim_outlier = torch.tensor([5.0, 1, 0, 0])  # the same logits, off the ID subspace
    react_outlier = torch.tensor([0.0, 0, 0, 20])
    assert energy(layer(react_outlier[None])) > energy(layer(in_distribution[None]))
    for detector, outlier in ((ViM(dim=2), vim_outlier), (ReAct(), react_outlier)):
        detector.fit(train, None, head=layer)
        features = torch.stack([in_distribution, outlier])
        id_score, ood_score = detector.score(ScoredBatch(None, None, features, None))
        assert id_score > ood_score, detector.name


def test_vim_react_and_gen_tuning_keep_the_best_validation_auroc():
    """Each grid point against a brute-force loop: the numpy formula, one point at a time."""
    model = linear_model(inputs=8)  # penultimate features: the flattened images
    layer = head(model)
    weight, bias = layer.weight.detach(), layer.bias.detach()
    torch.manual_seed(1)
    train = torch.randn(64, 8).relu() + torch.rand(8)
    id_images = (torch.randn(12, 2, 4).relu() + torch.rand(2, 4)) * 1.2
    ood_images = torch.randn(10, 2, 4).abs() * 2
    id_features, ood_features = id_images.flatten(1), ood_images.flatten(1)

    def brute_force(formula, points):
        return torch.tensor(
            [ood_metrics(formula(id_features, p), formula(ood_features, p))["auroc"]
             for p in points]
        )  # fmt: skip

    dims = [1, 3, 6]
    vim_detector = ViM(dims=dims).fit(train, None, head=layer)
    percentile_grid = [10.0, 50.0, 90.0]
    react_detector = ReAct(percentiles=percentile_grid).fit(train, None, head=layer)
    grid = {"gamma": [0.1, 1.0, 3.0], "m": [1, 2, 10]}
    gen_detector = GEN(gammas=grid["gamma"], ms=grid["m"])
    points = [(g, m) for g in grid["gamma"] for m in grid["m"]]
    cases = [
        (vim_detector, dims, lambda x, d: vim_numpy(train, x, weight, bias, d),
         lambda detector: detector.dim, "vim{}"),
        (react_detector, percentile_grid, lambda x, p: react_numpy(train, x, weight, bias, p),
         lambda detector: detector.percentile, "react{:g}"),
        (gen_detector, points, lambda x, p: gen_numpy(layer(x).detach(), *p),
         lambda detector: (detector.gamma, detector.m), "gen_g{0[0]:g}_m{0[1]}"),
    ]  # fmt: skip
    for detector, values, formula, chosen, name in cases:
        assert detector.needs_tuning
        result = detector.tune(model, [id_images[:5], id_images[5:]], [ood_images])
        expected = brute_force(formula, values)
        assert len(set(expected.tolist())) > 1  # the grid matters here
        torch.testing.assert_close(result.auroc.flatten(), expected)
        best = values[int(expected.argmax())]
        assert chosen(detector) == best
        assert detector.name == name.format(best)
    assert result.grid == grid and result.auroc.shape == (3, 3)
    assert not (ViM().needs_tuning or ReAct().needs_tuning or GEN().needs_tuning)
