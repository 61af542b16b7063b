"""Attacks against independent computations, the registry, and the metrics on hand-made results."""

import typing

import pytest
import torch
from torch import nn

from lab4.attacks import (
    ATTACKS,
    FGSM,
    PGD,
    Attack,
    AttackName,
    AttackResult,
    IterativeFGSM,
    attack,
    attack_metrics,
)


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


def reference(model, image, label, eps, steps, budget=None, start=None, stop=True, target=None):
    """The textbook iteration on one image, written out: (adversarial image, steps taken)."""
    goal, sign = (label, 1.0) if target is None else (target, -1.0)
    x = image.clone() if start is None else start.clone()
    for step in range(steps + 1):
        x.requires_grad_(True)
        logits = model(x[None])
        predicted = logits.argmax().item()
        if stop and (predicted != label if target is None else predicted == target):
            return x.detach(), step
        if step == steps:
            break
        (gradient,) = torch.autograd.grad(nn.functional.cross_entropy(logits, goal[None]), x)
        x = x.detach() + sign * eps * gradient.sign()
        if budget is not None:
            x = image + (x - image).clamp(-budget, budget)
        x = x.clamp(0, 1)
    return x.detach(), steps


def test_fgsm_equals_an_independent_autograd_step_with_clipping(batch):
    model, images, labels = batch
    epsilon = 0.03
    inputs = images.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(inputs), labels).backward()
    expected = (images + epsilon * inputs.grad.sign()).clamp(0, 1)
    torch.testing.assert_close(FGSM(model, epsilon)(images, labels), expected)
    result = FGSM(model, epsilon).run(images, labels)
    torch.testing.assert_close(result.adversarial, expected)
    assert (result.iterations == 1).all()  # every image, fooled or not


@pytest.mark.parametrize("targeted", [False, True])
def test_iterative_fgsm_equals_the_per_image_iteration(batch, targeted):
    model, images, labels = batch
    targets = torch.full_like(labels, 3) if targeted else None
    result = IterativeFGSM(model, 1 / 255, steps=10, budget=4 / 255).run(images, labels, targets)
    for i in range(len(images)):
        target = None if targets is None else targets[i]
        expected, steps = reference(
            model, images[i], labels[i], 1 / 255, 10, 4 / 255, target=target
        )
        torch.testing.assert_close(result.adversarial[i], expected)
        assert result.iterations[i] == steps
    # per-sample stopping did happen: images took different numbers of steps
    assert result.iterations.unique().numel() > 1


def test_pgd_equals_the_iteration_from_its_random_start(batch):
    model, images, labels = batch
    eps, steps = 1 / 255, 4
    budget = steps * eps / 2  # PGD's default ball
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(7))  # float32
    starts = (images + (2 * noise - 1) * budget).clamp(0, 1)
    generator = torch.Generator().manual_seed(7)
    pgd = PGD(model, eps, steps=steps, stop_on_success=False, generator=generator)
    adversarial = pgd(images, labels)
    for i in range(len(images)):
        expected, _ = reference(model, images[i], labels[i], eps, steps, budget, starts[i], False)
        torch.testing.assert_close(adversarial[i], expected)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_stays_in_its_budget_and_in_range(batch, name):
    model, images, labels = batch
    budget = 2 / 255
    result = ATTACKS[name](model, 1 / 255, steps=10, budget=budget).run(images, labels)
    assert (result.adversarial - images).abs().max() <= budget + 1e-12
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    assert (result.iterations <= 10).all()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_is_targeted_when_given_targets(batch, name):
    model, images, labels = batch
    targets = torch.full_like(labels, 3)
    result = ATTACKS[name](model, 2 / 255, steps=10, budget=16 / 255).run(images, labels, targets)
    metrics = attack_metrics(result)
    assert metrics["target_confidence_gain"] > 0
    assert torch.equal(result.success, result.prediction_after == 3)
    if name != "fgsm":  # one step rarely reaches a chosen class
        assert metrics["success_rate"] > 0


def test_batched_attack_equals_attacking_one_image_at_a_time(batch):
    model, images, labels = batch
    iterative = IterativeFGSM(model, 1 / 255, steps=10, budget=16 / 255)
    batched = iterative.run(images, labels)
    singles = AttackResult.cat(
        [iterative.run(images[i : i + 1], labels[i : i + 1]) for i in range(len(images))]
    )
    torch.testing.assert_close(batched.adversarial, singles.adversarial)
    assert torch.equal(batched.iterations, singles.iterations)
    assert torch.equal(batched.success, singles.success)
    assert (batched.iterations[batched.success] < 10).any()  # successes stopped early


@pytest.mark.parametrize("name", list(ATTACKS))
def test_model_modes_are_restored_after_every_attack(batch, name):
    model, images, labels = batch
    model.train()
    model[1].eval()  # a mixed model, e.g. frozen BN
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append(module.training))
    ATTACKS[name](model, 1 / 255, steps=3)(images, labels)
    assert seen and not any(seen)  # eval mode during the attack
    assert model.training and model[0].training and not model[1].training


def test_the_registry_is_the_one_list_of_attacks():
    assert typing.get_args(AttackName) == tuple(ATTACKS)
    assert all(issubclass(cls, Attack) for cls in ATTACKS.values())
    assert list(ATTACKS.items()) == [("fgsm", FGSM), ("iterative", IterativeFGSM), ("pgd", PGD)]


def test_attacks_reject_a_non_positive_step(batch):
    with pytest.raises(ValueError, match="eps > 0"):
        FGSM(batch[0], 0.0)


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
