"""The batched attack engine behind every attack class, in [0, 1] pixel space (the model
normalises inside).

:func:`perturb` takes signed-gradient steps of size ε on a whole batch, **per sample**: an image
that succeeds stops while the rest of the batch goes on (``stop_on_success``), at most
``iterations`` steps, optionally projected onto an L∞ ball of radius ``budget`` around x and
started from a random point of that ball; with ``targets`` it steps *down* the target's loss.
The methods (:mod:`lab4.attacks.fgsm`, ``iterative``, ``pgd``) are choices of these options;
APGD (:mod:`lab4.attacks.apgd`) has a loop of its own, and
:func:`lab4.attacks.restarts.best_of_restarts` repeats either. :func:`record` adds the bookkeeping
(:class:`AttackResult`) and :func:`attack_metrics` turns a result into the numbers the labs
report, defined once here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttackResult:
    """An attacked batch and what happened to every sample.

    ``iterations`` counts the gradient steps applied to each image (0 for an image that needed
    none); ``success`` is judged on the final prediction: ≠ label (untargeted) or = target.
    """

    images: torch.Tensor
    adversarial: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor | None
    probabilities_before: torch.Tensor
    probabilities_after: torch.Tensor
    success: torch.Tensor
    iterations: torch.Tensor

    @property
    def prediction_before(self) -> torch.Tensor:
        return self.probabilities_before.argmax(dim=1)

    @property
    def prediction_after(self) -> torch.Tensor:
        return self.probabilities_after.argmax(dim=1)

    @staticmethod
    def cat(results: list[AttackResult]) -> AttackResult:
        """One result from the results of consecutive batches."""
        fields = AttackResult.__dataclass_fields__
        return AttackResult(
            **{
                name: None
                if getattr(results[0], name) is None
                else torch.cat([getattr(r, name) for r in results])
                for name in fields
            }
        )


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module in eval mode inside, and each module's own mode restored afterwards
    (a model may mix modes, e.g. a frozen backbone in eval inside a training model)."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.training = training


#: ``perturb(images, labels, targets) -> (adversarial images, gradient steps per image)``
Perturb = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]
]


def record(
    model: nn.Module,
    perturb: Perturb,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None = None,
) -> AttackResult:
    """Attack a batch of [0, 1] images with ``perturb`` and record what happened to each."""
    labels = labels.to(images.device)
    targets = None if targets is None else targets.to(images.device)
    with eval_mode(model), torch.no_grad():
        probabilities_before = model(images).softmax(dim=1)
    adversarial, steps = perturb(images, labels, targets)
    with eval_mode(model), torch.no_grad():
        probabilities_after = model(adversarial).softmax(dim=1)
    predicted = probabilities_after.argmax(dim=1)
    success = predicted != labels if targets is None else predicted == targets
    return AttackResult(
        images=images.detach().clone(),
        adversarial=adversarial,
        labels=labels,
        targets=targets,
        probabilities_before=probabilities_before,
        probabilities_after=probabilities_after,
        success=success,
        iterations=steps,
    )


def attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step_size: float,
    iterations: int = 1,
    **options,
) -> AttackResult:
    """Attack a batch of [0, 1] images with :func:`perturb` and record what happened to each;
    the arguments are :func:`perturb`'s (``options``: budget, random_start, targets,
    stop_on_success, generator)."""
    targets = options.pop("targets", None)

    def run(images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None):
        return perturb(model, images, labels, step_size, iterations, targets=targets, **options)

    return record(model, run, images, labels, targets)


def perturb(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    step_size: float,
    iterations: int = 1,
    budget: float | None = None,
    random_start: bool = False,
    targets: torch.Tensor | None = None,
    stop_on_success: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adversarial images of a batch and the steps each took (all adversarial training
    needs; :func:`attack` adds the bookkeeping).

    Args:
        model: maps [0, 1] images to logits; put in eval mode during the attack, then restored.
        images, labels: the batch and its true classes.
        step_size: ε of each signed-gradient step, in [0, 1] pixel units (2/255 = 0.0078).
        iterations: at most this many steps.
        budget: L∞ radius of the allowed perturbation around ``images`` (``None``: no
            projection, only the [0, 1] clipping).
        random_start: start from a uniform point in the ``budget`` ball (PGD).
        targets: target classes of a targeted attack (``None``: untargeted).
        stop_on_success: stop each image as soon as it succeeds (``False``: every image takes
            every step, as in the textbook FGSM).
        generator: for the random start.
    """
    if random_start and budget is None:
        raise ValueError("random_start needs a budget (the radius of the starting ball)")
    goal = labels if targets is None else targets
    direction = 1.0 if targets is None else -1.0  # up the true class's loss, or down the target's
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        original = images.detach().clone()
        adversarial = original.clone()
        if random_start:
            noise = torch.rand(original.shape, generator=generator, device="cpu")
            adversarial = (adversarial + (2 * noise.to(images.device) - 1) * budget).clamp(0, 1)
        steps = torch.zeros(len(images), dtype=torch.long, device=images.device)
        active = torch.ones(len(images), dtype=torch.bool, device=images.device)
        for step in range(iterations + 1):
            if step == iterations and not stop_on_success:
                break  # the last check only serves per-sample stopping
            index = active.nonzero().squeeze(1)
            if len(index) == 0:
                break
            inputs = adversarial[index].requires_grad_(True)
            logits = model(inputs)
            done = torch.zeros(len(index), dtype=torch.bool, device=images.device)
            if stop_on_success:
                predicted = logits.argmax(dim=1)
                done = predicted != labels[index] if targets is None else predicted == goal[index]
                active[index[done]] = False
            if step == iterations or done.all():
                break
            loss = nn.functional.cross_entropy(logits, goal[index], reduction="sum")
            (gradient,) = torch.autograd.grad(loss, inputs)
            moving = index[~done]
            with torch.no_grad():
                moved = adversarial[moving] + direction * step_size * gradient[~done].sign()
                if budget is not None:
                    moved = original[moving] + (moved - original[moving]).clamp(-budget, budget)
                adversarial[moving] = moved.clamp(0, 1)
            steps[moving] += 1
    return adversarial.detach(), steps


#: the metrics of :func:`attack_metrics` that tables and logs report, in their order
REPORTED_METRICS = ("success_rate", "mean_iterations", "confidence_drop", "robust_accuracy")


def attack_metrics(result: AttackResult) -> dict[str, float]:
    """The reported numbers, over the samples the model classified correctly *before* the attack
    (a sample it already got wrong is no success of the attack; such samples are counted apart):

    - ``success_rate``: fraction of those now predicted ≠ label (untargeted) or = target
      (targeted; samples whose true class is the target are left out too);
    - ``mean_iterations``: gradient steps applied until success (all runs of an attack with
      restarts), averaged over the successes;
    - ``confidence_drop``: mean fall of the true-class probability (before − after);
    - ``target_confidence_gain``: mean rise of the target's probability (targeted only);
    - ``robust_accuracy``: fraction of *all* samples still classified correctly after the attack;
    - ``clean_accuracy`` and ``misclassified_before`` (a count) for context.
    """
    labels = result.labels
    correct = result.prediction_before == labels
    eligible = correct if result.targets is None else correct & (result.targets != labels)
    succeeded = result.success & eligible
    rows = torch.arange(len(labels), device=labels.device)
    true_before = result.probabilities_before[rows, labels]
    true_after = result.probabilities_after[rows, labels]
    nan = float("nan")
    metrics = {
        "samples": float(len(labels)),
        "clean_accuracy": correct.float().mean().item(),
        "misclassified_before": float((~correct).sum().item()),
        "success_rate": succeeded.sum().item() / eligible.sum().item() if eligible.any() else nan,
        "mean_iterations": result.iterations[succeeded].float().mean().item()
        if succeeded.any()
        else nan,
        "confidence_drop": (true_before - true_after)[eligible].mean().item()
        if eligible.any()
        else nan,
        "robust_accuracy": (result.prediction_after == labels).float().mean().item(),
    }
    if result.targets is not None:
        gain = (
            result.probabilities_after[rows, result.targets]
            - result.probabilities_before[rows, result.targets]
        )
        metrics["target_confidence_gain"] = gain[eligible].mean().item() if eligible.any() else nan
    return metrics
