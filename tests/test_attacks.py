"""Attacks against independent computations, the registry, and the metrics on hand-made results."""

import math
import typing

import pytest
import torch
from torch import nn

from lab4.attacks import (
    APGD,
    ATTACKS,
    FGSM,
    PGD,
    Attack,
    AttackName,
    AttackResult,
    IterativeFGSM,
    attack,
    attack_metrics,
    best_of_restarts,
)
from lab4.attacks.apgd import checkpoints


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
    assert list(ATTACKS.items()) == [
        ("fgsm", FGSM), ("iterative", IterativeFGSM), ("pgd", PGD), ("apgd_ce", APGD)
    ]  # fmt: skip


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


# --- the threat model of the field: the L∞ ball of radius ε --------------------------------


def test_in_ball_applies_each_attacks_step_rule(batch):
    model, radius = batch[0], 8 / 255
    fgsm, pgd = FGSM.in_ball(model, radius), PGD.in_ball(model, radius, restarts=3)
    apgd, iterative = APGD.in_ball(model, radius), IterativeFGSM.in_ball(model, radius, steps=7)
    assert (fgsm.eps, fgsm.max_steps, fgsm.budget) == (radius, 1, radius)
    assert (pgd.eps, pgd.steps, pgd.budget, pgd.runs) == (radius / 4, 20, radius, 3)
    assert (apgd.radius, apgd.steps, apgd.runs) == (radius, 100, 1)
    assert (iterative.eps, iterative.steps, iterative.runs) == (radius / 4, 7, 1)  # deterministic
    assert APGD(model, 2 / 255).radius == 2 / 255 and APGD(model, 1, budget=0.5).radius == 0.5


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_in_the_ball_stays_in_it_and_in_range(batch, name):
    model, images, labels = batch
    radius = 8 / 255
    attack_ = ATTACKS[name].in_ball(model, radius, steps=10, restarts=2, stop_on_success=False)
    adversarial = attack_(images, labels)
    assert (adversarial - images).abs().max() <= radius + 1e-12
    assert adversarial.min() >= 0 and adversarial.max() <= 1


def linear_model() -> tuple[nn.Module, torch.Tensor]:
    """Two classes, logits W·x + b; class 0 wins everywhere near the images (b₀ = 10), so
    every attack runs to its end (and p₀ < 1 in float64: the gradient keeps w₁ − w₀). Returns the
    model and w₀ − w₁ as an image."""
    torch.manual_seed(3)
    layer = nn.Linear(3 * 8 * 8, 2).double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([10.0, 0.0]))
    return nn.Sequential(nn.Flatten(), layer), (layer.weight[0] - layer.weight[1]).view(3, 8, 8)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd_ce"])
def test_on_a_linear_model_every_attack_reaches_the_balls_worst_corner(name):
    """max CE(W(x + δ), y) over |δ|∞ ≤ ε and x + δ in [0, 1] is, coordinate by coordinate,
    x − ε·sign(w_y − w_other), clipped to [0, 1] (the loss is monotone in the margin)."""
    model, difference = linear_model()
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.zeros(6, dtype=torch.long)
    radius = 8 / 255
    corner = (images - radius * difference.sign()).clamp(0, 1)
    attack_ = ATTACKS[name].in_ball(model, radius, generator=torch.Generator().manual_seed(1))
    result = attack_.run(images, labels)
    torch.testing.assert_close(result.adversarial, corner, rtol=0, atol=1e-12)
    assert not result.success.any()  # the bias keeps class 0: every image took every step
    loss = nn.functional.cross_entropy(model(corner), labels, reduction="none")
    for _ in range(3):  # and no random point of the ball does better
        noise = 2 * torch.rand(images.shape, generator=gen(2), dtype=torch.float64) - 1
        other = (images + radius * noise).clamp(0, 1)
        assert (nn.functional.cross_entropy(model(other), labels, reduction="none") < loss).all()


def test_pgd_equals_torchattacks_from_the_same_start(batch):
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = batch
    radius, alpha = 8 / 255, 2 / 255
    expected = torchattacks.PGD(model, eps=radius, alpha=alpha, steps=10, random_start=False)(
        images, labels
    )
    pgd = PGD(model, alpha, steps=10, budget=radius, random_start=False, stop_on_success=False)
    torch.testing.assert_close(pgd(images, labels), expected, rtol=0, atol=0)


def test_apgd_checkpoints_follow_the_paper():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(200) == [44, 82, 114, 140, 160, 174, 186, 198]
    assert checkpoints(10) == [3, 5, 6, 7, 8, 9]
    assert checkpoints(1) == []


def apgd_reference(model, image, label, radius, iterations, stop, rho=0.75, alpha=0.75):
    """Algorithm 1 of Croce & Hein (2020), L∞, CE, on one image from x₀ = x, written out:
    (adversarial image, steps taken)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = sorted({math.ceil(q * iterations - 1e-9) for q in p[1:]} & set(range(1, iterations)))
    lower, upper = (image - radius).clamp(0, 1), (image + radius).clamp(0, 1)

    def project(x):
        return torch.minimum(torch.maximum(x, lower), upper)

    def loss_gradient_broken(x):
        x = x.detach().requires_grad_(True)
        logits = model(x[None])
        loss = nn.functional.cross_entropy(logits, label[None])
        (gradient,) = torch.autograd.grad(loss, x)
        return loss.item(), gradient, logits.argmax().item() != label.item()

    x = image.clone()
    loss, gradient, broken = loss_gradient_broken(x)
    if stop and broken:
        return x, 0
    eta, x_previous, loss_previous = 2 * radius, x, loss
    best, best_loss, best_gradient = x, loss, gradient
    increases, last_checkpoint, reduced_last, best_loss_last = 0, 0, False, loss
    for k in range(iterations):
        z = project(x + eta * gradient.sign())
        a = 1.0 if k == 0 else alpha
        x_previous, x = x, project(x + (z - x) * a + (x - x_previous) * (1 - a))
        loss, gradient, broken = loss_gradient_broken(x)
        if stop and broken:
            return x, k + 1
        increases += loss > loss_previous
        loss_previous = loss
        if loss > best_loss:
            best, best_loss, best_gradient = x, loss, gradient
        if k + 1 in w:
            condition_1 = increases < rho * (k + 1 - last_checkpoint)
            condition_2 = not reduced_last and best_loss <= best_loss_last
            reduced_last = condition_1 or condition_2
            if reduced_last:
                eta, x, gradient = eta / 2, best, best_gradient
            increases, last_checkpoint, best_loss_last = 0, k + 1, best_loss
    return best, iterations


@pytest.mark.parametrize("stop", [True, False])
def test_apgd_equals_the_papers_algorithm_on_each_image(batch, stop):
    model, images, labels = batch
    radius, iterations = 3 / 255, 30
    apgd = APGD(model, radius, steps=iterations, random_start=False, stop_on_success=stop)
    adversarial, steps = apgd.perturb(images, labels)
    for i in range(len(images)):
        expected, taken = apgd_reference(model, images[i], labels[i], radius, iterations, stop)
        torch.testing.assert_close(adversarial[i], expected, rtol=0, atol=1e-15)
        assert steps[i] == taken
    if stop:  # per-sample stopping happened, and not everything broke
        assert 0 < (steps < iterations).sum() < len(images)


@pytest.mark.parametrize("radius", [2 / 255, 8 / 255])
def test_apgd_matches_the_reference_implementation(batch, radius):
    """torchattacks' APGD (a copy of auto-attack's, which RobustBench runs), from the same
    random start (the seed): with its step-halving test made strict as in the paper (it uses ≤)
    the best points agree to float rounding (its step size is float32) and the same images are
    broken; unmodified, it breaks the same images here (it differs only where the count of
    increases at a checkpoint equals ρ·interval, or at its first checkpoint, see APGD)."""
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = batch

    class PaperAPGD(torchattacks.APGD):
        def check_oscillation(self, x, j, k, y5, k3=0.75):
            increases = sum(x[j - c] > x[j - c - 1] for c in range(k))
            return increases < k * k3

    ours = APGD.in_ball(model, radius, stop_on_success=False, generator=gen(0))(images, labels)
    broken = APGD.in_ball(model, radius, generator=gen(0)).run(images, labels).success
    for reference in (PaperAPGD, torchattacks.APGD):
        attack_ = reference(model, eps=radius, steps=100, n_restarts=1, seed=0, loss="ce")
        torch.manual_seed(0)  # as its perturb() does before the single run
        best, robust, _, _ = attack_.attack_single_run(images, labels)
        assert torch.equal(~robust, broken)
        if reference is PaperAPGD:
            torch.testing.assert_close(ours, best, rtol=0, atol=1e-8)
    assert 0 < broken.sum() < len(images)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_batched_apgd_equals_attacking_one_image_at_a_time(batch):
    model, images, labels = batch
    apgd = APGD(model, 3 / 255, steps=20, random_start=False)
    batched = apgd.run(images, labels)
    singles = AttackResult.cat([apgd.run(images[i : i + 1], labels[i : i + 1]) for i in range(12)])
    torch.testing.assert_close(batched.adversarial, singles.adversarial)
    assert torch.equal(batched.iterations, singles.iterations)


# --- random restarts ------------------------------------------------------------------------


def test_restarts_keep_the_first_success_else_the_highest_loss():
    """A model whose logits are the pixels; ``perturb`` hands out prepared runs."""
    model = nn.Flatten()
    labels = torch.zeros(3, dtype=torch.long)
    runs = [  # logits of images 0, 1, 2 after each run (only the unbroken ones get a run)
        torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]),  # image 2 broken in run 1
        torch.tensor([[0.5, 0.0], [0.0, 1.0]]),  # image 1 broken in run 2
        torch.tensor([[0.25, 0.0]]),  # image 0: its highest loss so far
        torch.tensor([[3.0, 0.0]]),  # image 0: lower loss than run 3
    ]
    sizes = []

    def perturb(images, labels, targets):
        sizes.append(len(images))
        return runs[len(sizes) - 1].view(-1, 2, 1, 1).clone(), torch.full((len(images),), 10)

    adversarial, steps = best_of_restarts(model, perturb, torch.zeros(3, 2, 1, 1), labels, None, 4)
    assert sizes == [3, 2, 1, 1]  # each run attacks only the images not broken yet
    assert adversarial.flatten(1).tolist() == [[0.25, 0.0], [0.0, 1.0], [0.0, 1.0]]
    assert steps.tolist() == [40, 20, 10]  # the steps of all its runs


@pytest.mark.parametrize(("name", "steps"), [("pgd", 2), ("apgd_ce", 3)])
def test_restarts_never_lower_success_below_one_run_from_the_same_start(name, steps):
    model = tiny_cnn().eval()
    images = torch.rand(48, 3, 8, 8, generator=gen(1), dtype=torch.float64)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    one, five = (
        ATTACKS[name].in_ball(model, 6 / 255, steps=steps, restarts=r, generator=gen(0))
        for r in (1, 5)
    )
    once, restarted = one.run(images, labels), five.run(images, labels)
    assert (restarted.success >= once.success).all()
    # the images the first run broke are that run's images
    torch.testing.assert_close(
        restarted.adversarial[once.success], once.adversarial[once.success], rtol=0, atol=0
    )
    assert (restarted.iterations[~restarted.success] == 5 * steps).all()
    if name == "pgd":  # here more starts break more images
        assert restarted.success.sum() > once.success.sum()
