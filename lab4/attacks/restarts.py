"""Random restarts: an attack that starts at random, run again on the images it has not broken."""

from __future__ import annotations

import torch
from torch import nn

from lab4.attacks.engine import Perturb, eval_mode


def objective(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, whether the attack succeeded and the loss it climbs: CE of the label
    (untargeted) or −CE of the target."""
    with eval_mode(model), torch.no_grad():
        logits = model(images)
    predicted = logits.argmax(dim=1)
    if targets is None:
        return predicted != labels, nn.functional.cross_entropy(logits, labels, reduction="none")
    return predicted == targets, -nn.functional.cross_entropy(logits, targets, reduction="none")


def best_of_restarts(
    model: nn.Module,
    perturb: Perturb,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None = None,
    restarts: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``perturb`` (a randomly started attack) run up to ``restarts`` times, per image best.

    Every image takes the first run; each further run takes only the images no run has broken
    yet. An image counts as broken if any run breaks it and keeps the adversarial image of its
    first successful run, or else that of the run with the highest loss (:func:`objective`).
    The steps returned are the gradient steps of all its runs together (the cost of the attack).
    """
    adversarial, steps = perturb(images, labels, targets)
    if restarts == 1:
        return adversarial, steps
    success, loss = objective(model, adversarial, labels, targets)
    for _ in range(restarts - 1):
        index = (~success).nonzero().squeeze(1)
        if len(index) == 0:
            break
        subset_targets = None if targets is None else targets[index]
        candidate, candidate_steps = perturb(images[index], labels[index], subset_targets)
        broken, candidate_loss = objective(model, candidate, labels[index], subset_targets)
        better = broken | (candidate_loss > loss[index])
        adversarial[index[better]] = candidate[better]
        loss[index[better]] = candidate_loss[better]
        success[index] = broken
        steps[index] += candidate_steps
    return adversarial, steps
