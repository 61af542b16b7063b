"""Adversarially-augmented training: the loss it optimises, and its test run's reports."""

import csv

import torch
from torch import nn

from common.cli import main
from lab4.adversarial import AdversarialClassifier
from lab4.attacks import fgsm
from lab4.models import SimpleCNN
from tests.conftest import REPO


def test_training_loss_is_the_weighted_clean_and_fgsm_loss():
    torch.manual_seed(0)
    module = AdversarialClassifier(
        SimpleCNN((4, 8), num_classes=3, mean=[0.5] * 3, std=[0.25] * 3),
        num_classes=3,
        epsilon=2,
        clean_weight=0.2,
        adversarial_weight=0.8,
    )
    for layer in module.modules():  # frozen running statistics: the order of forwards is moot
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = 0.0
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    module._trainer = type("Trainer", (), {"log_every_n_steps": 50})()  # read by the step
    images, targets = torch.rand(6, 3, 8, 8), torch.randint(0, 3, (6,))
    module.train()
    loss = module.training_step((images, targets), 1)
    # independent: FGSM through the attack module on the eval-mode network, then the two losses
    adversarial = fgsm(module.model, images, targets, 2 / 255).adversarial
    module.train()
    expected = 0.2 * nn.functional.cross_entropy(module(images), targets) + 0.8 * (
        nn.functional.cross_entropy(module(adversarial), targets)
    )
    torch.testing.assert_close(loss, expected)
    assert module.model.training  # the attack restored the training mode


def test_adversarial_test_run_reports_robustness_and_ood(ood_folders, tmp_path):
    main(
        "lab4",
        [
            "test",
            f"--config={REPO / 'configs/lab4/adversarial_cnn_cifar10.yaml'}",
            f"--data.data_dir={ood_folders}",
            "--data.val_size=4",
            "--data.fake_size=8",
            "--data.download=false",
            f"--trainer.default_root_dir={tmp_path}",
        ],
    )
    (version,) = tmp_path.glob("version_*")
    with open(version / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["attack"], float(r["epsilon"])) for r in rows] == [
        (a, e) for a in ("fgsm", "iterative") for e in (1.0, 2.0, 4.0)
    ]
    assert all(0 <= float(r["robust_accuracy"]) <= 1 for r in rows)
    assert (version / "ood_metrics.csv").is_file() and (version / "robustness.md").is_file()
    metrics = (version / "metrics.csv").read_text()
    assert "test/adv_acc" in metrics and "robust/fgsm/eps2/robust_accuracy" in metrics
    table = tmp_path / "adversarial_training.md"
    runs = f"--runs={{'adv CNN': '{tmp_path}', 'never run': '{tmp_path / 'none'}'}}"
    main("lab4", ["report", "--kind=adversarial", runs, f"--output={table}"])
    row, missing = table.read_text().splitlines()[-2:]
    assert row.startswith("| adv CNN | ") and row.count(" / ") == 6  # six attack cells
    assert missing.startswith("| never run | not run |")
