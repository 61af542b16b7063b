"""LogitNorm against an independent computation, and as the classifier's training loss."""

import numpy as np
import pytest
import torch
import yaml
from scipy.special import log_softmax

from common.classifier import ImageClassifier
from common.cli import main
from common.losses import LogitNormLoss
from lab4.models import SimpleCNN
from tests.conftest import REPO
from tests.test_cli import fake_data_args


def test_logit_norm_loss_is_cross_entropy_of_normalised_logits():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 5, generator=generator) * 7
    targets = torch.randint(0, 5, (8,), generator=generator)
    z = logits.double().numpy()
    scaled = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-7) / 0.04
    expected = -log_softmax(scaled, axis=1)[np.arange(8), targets.numpy()].mean()
    assert LogitNormLoss(0.04)(logits, targets).item() == pytest.approx(expected, rel=1e-5)


def test_logit_norm_ignores_the_logits_norm_and_cross_entropy_does_not():
    """The point of the method: scaling the logits up no longer lowers the loss."""
    logits = torch.tensor([[3.0, 1.0, -2.0], [0.5, 2.0, 0.0]])
    targets = torch.tensor([0, 1])
    loss = LogitNormLoss(0.1)
    torch.testing.assert_close(loss(logits * 10, targets), loss(logits, targets))
    cross_entropy = torch.nn.functional.cross_entropy
    assert cross_entropy(logits * 10, targets) < cross_entropy(logits, targets)
    with pytest.raises(ValueError, match="temperature must be positive"):
        LogitNormLoss(0.0)


def test_classifier_trains_with_logit_norm_only_when_asked():
    network = SimpleCNN((4, 8), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert isinstance(ImageClassifier(network, 10).criterion, torch.nn.CrossEntropyLoss)
    model = ImageClassifier(network, 10, logit_norm=0.04, label_smoothing=0.1)
    assert isinstance(model.criterion, LogitNormLoss)
    assert model.criterion.temperature == 0.04
    assert model.criterion.cross_entropy.label_smoothing == 0.1


def test_logit_norm_config_is_the_resnet20_recipe_with_another_loss(tmp_path):
    base = REPO / "configs/lab1/resnet20_cifar10.yaml"
    override = REPO / "configs/lab4/resnet20_logitnorm.yaml"
    changed = yaml.safe_load(override.read_text())
    assert changed["model"]["init_args"] == {"logit_norm": 0.04, "label_smoothing": 0.0}
    assert set(changed) == {"trainer", "model"} and set(changed["trainer"]) == {"default_root_dir"}
    main(
        "lab4",
        [
            "fit",
            f"--config={base}",
            f"--config={override}",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            *fake_data_args(base),
        ],
    )
