"""Every Lab 4 detector fits, tunes and scores on every network of the project, through the
shared contract only (no code per network): the path ``OODEvaluation`` takes."""

import inspect

import pytest
import torch

import lab4.detectors
from common.features import head, penultimate
from common.models import CifarResNet, TorchvisionResNet, find_normalize
from common.ood import ScoredBatch
from lab4.detectors import GEN, KNN, ODIN, Energy, Mahalanobis, MaxLogit, MaxSoftmax, ReAct, ViM
from lab4.models import SimpleCNN

NETWORKS = {
    "cifar_resnet": lambda: CifarResNet(stage_depths=[1, 1, 1], widths=[4, 8, 16]),
    "simple_cnn": lambda: SimpleCNN(widths=[4, 8, 16]),
    "torchvision_resnet18": lambda: TorchvisionResNet("resnet18", num_classes=10),
}


def detectors():
    """One of each detector, with small grids where it has one (ViM's dims stay below the rank
    of 24 training features, whatever the feature dimension)."""
    return [
        MaxSoftmax(),
        MaxLogit(),
        Energy(),
        GEN(gammas=[0.1, 1.0], ms=[2, 10]),
        ODIN(temperatures=[1.0, 100.0], epsilons=[0.0, 0.002]),
        Mahalanobis(),
        KNN(ks=[1, 5]),
        ViM(dim=2, dims=[2, 4]),
        ReAct(percentiles=[80.0, 90.0]),
    ]


def test_every_detector_but_the_autoencoder_is_covered():
    exported = {
        value
        for value in vars(lab4.detectors).values()
        if inspect.isclass(value) and value.__module__.startswith("lab4.detectors.")
    }
    assert exported - {type(d) for d in detectors()} == {lab4.detectors.ReconstructionError}


@pytest.mark.parametrize("network", NETWORKS)
def test_detectors_fit_tune_and_score_on_the_network(network):
    torch.manual_seed(0)
    model = NETWORKS[network]().eval()
    normalize = find_normalize(model)
    if not normalize.is_set:  # as the classifier fills in the data's statistics
        normalize.set_statistics([0.5] * 3, [0.25] * 3)
    train, targets = torch.rand(24, 3, 32, 32), torch.randint(0, 10, (24,))
    id_images, ood_images = torch.rand(16, 3, 32, 32), torch.rand(16, 3, 32, 32) * 0.3
    with torch.inference_mode():  # as OODEvaluation runs inside Lightning's test loop
        features = penultimate(model, train)
        batch = ScoredBatch(model, id_images, penultimate(model, id_images), model(id_images))
        for detector in detectors():
            if detector.needs_fitting:
                detector.fit(features, targets, head=head(model))
            if detector.needs_tuning:
                result = detector.tune(model, [id_images[:8], id_images[8:]], [ood_images])
                assert result.auroc.isfinite().all(), detector.name
            scores = detector.score(batch)
            assert scores.shape == (16,), detector.name
            assert scores.isfinite().all(), detector.name
