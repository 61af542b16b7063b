"""Attacks against independent computations, and the metrics on hand-made results."""

import pytest
import torch
from torch import nn

from lab4.attacks import AttackResult, attack, attack_metrics, fgsm


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 5),
    ).double()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    model = tiny_cnn().eval()
    images = torch.rand(12, 3, 8, 8, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)  # every image classified "correctly" before
    return model, images, labels


def test_fgsm_equals_an_independent_autograd_step_with_clipping(batch):
    model, images, labels = batch
    epsilon = 0.03
    inputs = images.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(inputs), labels).backward()
    expected = (images + epsilon * inputs.grad.sign()).clamp(0, 1)
    result = fgsm(model, images, labels, epsilon)
    torch.testing.assert_close(result.adversarial, expected)
    assert (result.iterations == 1).all()


def test_every_adversarial_image_stays_in_its_budget_and_in_range(batch):
    model, images, labels = batch
    budget = 2 / 255
    for random_start in (False, True):
        result = attack(
            model, images, labels, 1 / 255, 10, budget=budget, random_start=random_start
        )
        assert (result.adversarial - images).abs().max() <= budget + 1e-12
        assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
        assert (result.iterations <= 10).all()


def test_targeted_attack_moves_toward_the_target(batch):
    model, images, labels = batch
    targets = torch.full_like(labels, 3)
    result = attack(model, images, labels, 2 / 255, 10, targets=targets)
    metrics = attack_metrics(result)
    assert metrics["target_confidence_gain"] > 0
    assert metrics["success_rate"] > 0
    assert (result.prediction_after[result.success] == 3).all()


def test_batched_attack_equals_attacking_one_image_at_a_time(batch):
    model, images, labels = batch
    batched = attack(model, images, labels, 1 / 255, 10, budget=16 / 255)
    singles = AttackResult.cat(
        [
            attack(model, images[i : i + 1], labels[i : i + 1], 1 / 255, 10, budget=16 / 255)
            for i in range(len(images))
        ]
    )
    torch.testing.assert_close(batched.adversarial, singles.adversarial)
    assert torch.equal(batched.iterations, singles.iterations)
    assert torch.equal(batched.success, singles.success)
    # per-sample stopping: images took different numbers of steps, successes stopped early
    assert batched.iterations.unique().numel() > 1
    assert (batched.iterations[batched.success] < 10).any()


def test_model_modes_are_restored_after_the_attack(batch):
    model, images, labels = batch
    model.train()
    model[1].eval()  # a mixed model, e.g. frozen BN
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append(module.training))
    attack(model, images, labels, 1 / 255, 3)
    assert seen and not any(seen)  # eval mode during the attack
    assert model.training and model[0].training and not model[1].training


def test_random_start_needs_a_budget(batch):
    with pytest.raises(ValueError, match="budget"):
        attack(*batch, 1 / 255, 3, random_start=True)


def test_metrics_count_only_samples_that_were_correct_before():
    labels = torch.tensor([0, 0, 1, 1])
    before = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    after = torch.tensor([[0.3, 0.7], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    # sample 2 was wrong before (predicted 0 for label 1): not a success of the attack
    result = AttackResult(
        images=torch.zeros(4, 1, 1, 1),
        adversarial=torch.zeros(4, 1, 1, 1),
        labels=labels,
        targets=None,
        probabilities_before=before,
        probabilities_after=after,
        success=after.argmax(dim=1) != labels,
        iterations=torch.tensor([3, 10, 0, 10]),
    )
    metrics = attack_metrics(result)
    assert metrics["misclassified_before"] == 1 and metrics["clean_accuracy"] == 0.75
    assert metrics["success_rate"] == pytest.approx(1 / 3)  # sample 0 out of 0, 1, 3
    assert metrics["mean_iterations"] == 3
    assert metrics["confidence_drop"] == pytest.approx(
        ((0.9 - 0.3) + (0.8 - 0.6) + (0.6 - 0.8)) / 3
    )
    assert metrics["robust_accuracy"] == 0.5  # samples 1 and 3 still right


def test_attack_command_writes_the_table_figures_and_validates_the_target(ood_folders, tmp_path):
    import json

    from common.cli import main
    from tests.conftest import REPO

    output = tmp_path / "attacks"
    common = [
        f"--data.data_dir={ood_folders}",
        "--data.val_size=4",
        "--data.download=false",
        "--checkpoint=null",
        "--num_images=8",
        "--epsilons=[1, 8]",
        "--examples=2",
        "--wandb=false",
        f"--output_dir={output}",
    ]
    for config in ("fgsm_sweep", "targeted_dog"):
        main("lab4", ["attack", f"--config={REPO / 'configs/lab4/attacks' / config}.yaml", *common])
    runs = {p.stem: json.loads(p.read_text()) for p in output.glob("*.json")}
    assert set(runs) == {"custom_cnn", "custom_cnn_dog"}
    assert [(r["attack"], r["epsilon"]) for r in runs["custom_cnn"]["rows"]] == [
        ("fgsm", 1), ("fgsm", 8), ("iterative", 1), ("iterative", 8)
    ]  # fmt: skip
    assert "target_confidence_gain" in runs["custom_cnn_dog"]["rows"][0]
    table = (output / "attacks.md").read_text()
    assert "| custom CNN | iterative | dog | 8 |" in table
    for stem in runs:
        assert (output / f"{stem}_sweep.png").is_file() and (
            output / f"{stem}_examples.png"
        ).is_file()
    with pytest.raises(SystemExit, match="unknown target class 'dgo'"):
        main("lab4", ["attack", f"--config={REPO / 'configs/lab4/attacks/targeted_dog.yaml'}",
                      *common, "--target=dgo"])  # fmt: skip
