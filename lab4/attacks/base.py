"""The contract of an attack (no Lightning here): ``Attack(model, eps)(images, labels)``.

An attack is a small class over the batched engine (:mod:`lab4.attacks.engine`) that names, in
:meth:`Attack.options`, the engine options that make its method; one that does not fit the
engine's signed steps (APGD) overrides :meth:`Attack.perturb_once` with its own batched loop.
Adding one = a file with its class, a line in :data:`lab4.attacks.ATTACKS`, and a test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from lab4.attacks.engine import AttackResult, perturb, record
from lab4.attacks.restarts import best_of_restarts


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
    method does not use (FGSM: one step on every image). **The threat model "within the L∞ ball
    of radius ε"** is :meth:`in_ball`, which applies each attack's own step rule.

    Args:
        model: maps [0, 1] images ``[N, C, H, W]`` to logits ``[N, classes]``.
        eps: ε, the size of each signed-gradient step, in [0, 1] pixel units (1/255 ≈ 0.0039);
            APGD, whose step adapts, reads it as its radius when ``budget`` is ``None``.
        steps: at most this many steps (10).
        budget: L∞ radius of the allowed perturbation around the images (``None``: only the
            [0, 1] clipping, except PGD and APGD, whose defaults are in their docstrings).
        stop_on_success: stop each image as soon as it succeeds (``True``; ``False``: every image
            takes every step, as adversarial training wants).
        generator: random numbers of a random start (PGD, APGD).
        restarts: runs per image of an attack with a random start (1): each further run attacks
            only the images not broken yet, and an image counts as broken if any run breaks it
            (:func:`~lab4.attacks.restarts.best_of_restarts`); deterministic attacks run once.

    Example::

        attack = IterativeFGSM(model, eps=1 / 255, steps=10)
        adversarial = attack(images, labels)
        metrics = attack_metrics(attack.run(images, labels, targets=torch.full_like(labels, 5)))
        pgd20 = PGD.in_ball(model, 8 / 255, restarts=5)  # 20 steps of 2/255 in the 8/255 ball
    """

    #: whether a run starts at a random point (then ``restarts`` apply)
    random_start: bool = False
    #: the step of :meth:`in_ball` as a fraction of the radius, and its number of steps
    ball_step: float = 0.25
    ball_steps: int = 20

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 10,
        budget: float | None = None,
        stop_on_success: bool = True,
        generator: torch.Generator | None = None,
        restarts: int = 1,
    ) -> None:
        if eps <= 0 or steps < 1:
            raise ValueError(f"an attack needs eps > 0 and steps >= 1, got {eps}, {steps}")
        if restarts < 1:
            raise ValueError(f"an attack needs restarts >= 1, got {restarts}")
        self.model, self.eps, self.steps, self.budget = model, eps, steps, budget
        self.stop_on_success, self.generator, self.restarts = stop_on_success, generator, restarts

    @classmethod
    def in_ball(cls, model: nn.Module, radius: float, steps: int | None = None, **kwargs) -> Attack:
        """This attack within the L∞ ball of radius ``radius`` (the field's threat model, e.g.
        8/255), with its step rule: steps of ``ball_step·radius``, ``ball_steps`` of them
        unless ``steps`` is given (FGSM: one step of the radius; PGD: 20 steps of radius/4;
        APGD-CE: its own schedule, 100 iterations). ``kwargs``: the constructor's others."""
        steps = cls.ball_steps if steps is None else steps
        return cls(model, cls.ball_step * radius, steps=steps, budget=radius, **kwargs)

    @property
    def runs(self) -> int:
        """Runs per image: ``restarts`` with a random start, else 1."""
        return self.restarts if self.random_start else 1

    @property
    def max_steps(self) -> int:
        """Gradient steps of one run at most (FGSM: 1)."""
        return self.options().get("iterations", self.steps)

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The options of :func:`~lab4.attacks.engine.perturb` that make this method
        (``iterations``, ``budget``, ``random_start``, ``stop_on_success``, ``generator``), or
        of the attack's own loop where it overrides :meth:`perturb_once`."""

    def perturb_once(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run on a batch: the adversarial images and the gradient steps each took."""
        return perturb(self.model, images, labels, self.eps, targets=targets, **self.options())

    def perturb(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`perturb_once` over :attr:`runs` runs, per image best."""
        return best_of_restarts(self.model, self.perturb_once, images, labels, targets, self.runs)

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The adversarial images of a batch."""
        return self.perturb(images, labels.to(images.device), targets)[0]

    def run(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> AttackResult:
        """Attack a batch and record, per image, the predictions, steps and success."""
        return record(self.model, self.perturb, images, labels, targets)
