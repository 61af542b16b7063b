"""Adversarially-augmented training: the loss it optimises, the attacks it can use, its configs,
and its test run's reports."""

import csv

import pytest
import torch
import yaml
from torch import nn

from common.cli import main
from lab4.adversarial import AdversarialClassifier
from lab4.attacks import ATTACKS
from lab4.models import SimpleCNN
from tests.conftest import REPO

BASE = REPO / "configs/lab4/adversarial_cnn_cifar10.yaml"


@pytest.mark.parametrize("name", list(ATTACKS))
def test_training_loss_is_the_weighted_clean_and_adversarial_loss(name):
    torch.manual_seed(0)
    module = AdversarialClassifier(
        SimpleCNN((4, 8), num_classes=3, mean=[0.5] * 3, std=[0.25] * 3),
        num_classes=3,
        epsilon=2,
        attack=name,
        pgd_steps=2,
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
    torch.manual_seed(1)  # PGD's random start
    loss = module.training_step((images, targets), 1)
    # independent of the module: the registry's attack on the network, every image every step
    attack = ATTACKS[name](module.model, 2 / 255, steps=2, stop_on_success=False)
    torch.manual_seed(1)
    adversarial = attack(images, targets)
    module.train()
    expected = 0.2 * nn.functional.cross_entropy(module(images), targets) + 0.8 * (
        nn.functional.cross_entropy(module(adversarial), targets)
    )
    torch.testing.assert_close(loss, expected)
    assert module.model.training  # the attack restored the training mode
    assert not torch.equal(adversarial, images)


@pytest.mark.parametrize("override", ["cnn_eps4.yaml", "cnn_w0.2_eps1.yaml"])
def test_each_variant_overrides_the_base_config_and_trains(override, tmp_path, capsys):
    config = REPO / "configs/lab4/adversarial" / override
    args = ["fit", f"--config={BASE}", f"--config={config}"]
    with pytest.raises(SystemExit):
        main("lab4", [*args, "--print_config"])
    printed, changed = yaml.safe_load(capsys.readouterr().out), yaml.safe_load(config.read_text())
    assert printed["trainer"]["default_root_dir"] == changed["trainer"]["default_root_dir"]
    assert (
        printed["model"]["init_args"] | changed["model"]["init_args"]
        == printed["model"]["init_args"]
    )
    main(
        "lab4",
        [
            *args,
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            "--data=common.data.FakeDataModule",
            "--data.image_shape=[3, 32, 32]",
            "--data.batch_size=16",
            "--data.val_size=32",
        ],
    )


def test_a_non_positive_epsilon_fails_when_parsed():
    with pytest.raises(SystemExit) as error:
        main("lab4", ["fit", f"--config={BASE}", "--model.init_args.epsilon=0", "--print_config"])
    assert error.value.code != 0 and "epsilon" in str(error.value)


def test_adversarial_test_run_reports_robustness_and_ood(ood_folders, tmp_path):
    run_dir = tmp_path / "adversarial"
    data = [
        f"--data.data_dir={ood_folders}",
        "--data.val_size=4",
        "--data.fake_size=8",
        "--data.download=false",
    ]
    main("lab4", ["test", f"--config={BASE}", *data, f"--trainer.default_root_dir={run_dir}"])
    (version,) = run_dir.glob("version_*")
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
    runs = f"--runs={{'adv CNN': '{run_dir}', 'never run': '{tmp_path / 'none'}'}}"
    main("lab4", ["report", "--kind=adversarial", runs, f"--output={table}"])
    row, missing = table.read_text().splitlines()[-2:]
    assert row.startswith("| adv CNN | ") and row.count(" / ") == 6  # six attack cells
    assert missing.startswith("| never run | not run |")
