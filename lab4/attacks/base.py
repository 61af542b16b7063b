"""The contract of an attack (no Lightning here): ``Attack(model, eps)(images, labels)``.

An attack is a small class over the batched engine (:mod:`lab4.attacks.engine`) that names, in
:meth:`Attack.options`, the engine options that make its method. Adding one = a file with its
class, a line in :data:`lab4.attacks.ATTACKS`, and a test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from lab4.attacks.engine import AttackResult, attack, perturb


class Attack(ABC):
    """An adversarial attack on a classifier of [0, 1] images (normalisation inside the model).

    ``attack(images, labels)`` returns the adversarial images (same shape, in [0, 1]);
    ``attack.run(images, labels)`` also records what happened to each image
    (:class:`~lab4.attacks.engine.AttackResult`, the input of ``attack_metrics``). The model is
    in eval mode during the attack and every module's own mode is restored afterwards.

    **Targeted** is a mode of every attack: given ``targets`` (a class per image), the steps go
    *down* the targets' loss and success means being predicted as the target.

    The constructor is the same for every attack, so a sweep or a training method builds any of
    them by name (``ATTACKS[name](model, eps, steps=...)``); an attack ignores the arguments its
    method does not use (FGSM: one step on every image).

    Args:
        model: maps [0, 1] images ``[N, C, H, W]`` to logits ``[N, classes]``.
        eps: ε, the size of each signed-gradient step, in [0, 1] pixel units (1/255 ≈ 0.0039).
        steps: at most this many steps (10).
        budget: L∞ radius of the allowed perturbation around the images (``None``: only the
            [0, 1] clipping, except PGD, whose default is in its docstring).
        stop_on_success: stop each image as soon as it succeeds (``True``; ``False``: every image
            takes every step, as adversarial training wants).
        generator: random numbers of a random start (PGD).

    Example::

        attack = IterativeFGSM(model, eps=1 / 255, steps=10)
        adversarial = attack(images, labels)
        metrics = attack_metrics(attack.run(images, labels, targets=torch.full_like(labels, 5)))
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 10,
        budget: float | None = None,
        stop_on_success: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if eps <= 0 or steps < 1:
            raise ValueError(f"an attack needs eps > 0 and steps >= 1, got {eps}, {steps}")
        self.model, self.eps, self.steps, self.budget = model, eps, steps, budget
        self.stop_on_success, self.generator = stop_on_success, generator

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The options of :func:`~lab4.attacks.engine.perturb` that make this method
        (``iterations``, ``budget``, ``random_start``, ``stop_on_success``, ``generator``)."""

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The adversarial images of a batch."""
        return perturb(self.model, images, labels, self.eps, targets=targets, **self.options())[0]

    def run(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> AttackResult:
        """Attack a batch and record, per image, the predictions, steps and success."""
        return attack(self.model, images, labels, self.eps, targets=targets, **self.options())
