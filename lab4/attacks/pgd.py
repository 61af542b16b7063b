"""PGD: iterative FGSM from a random point of the L∞ ball."""

from __future__ import annotations

from typing import Any

from lab4.attacks.iterative import IterativeFGSM


class PGD(IterativeFGSM):
    """Projected gradient descent: Madry et al., "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018, https://arxiv.org/abs/1706.06083.

    :class:`~lab4.attacks.iterative.IterativeFGSM` started from ``x₀ = clip[0,1](x + u)``,
    ``u ~ U(−budget, budget)`` per pixel, every step projected back onto the ball. ``budget``
    defaults to ``steps·ε/2`` (the steps can reach the ball's surface and move along it).
    Arguments: see :class:`~lab4.attacks.base.Attack`; ``generator`` draws the start.

    Example::

        adversarial = PGD(model, eps=2 / 255, steps=7, budget=8 / 255)(images, labels)
    """

    def options(self) -> dict[str, Any]:
        budget = self.steps * self.eps / 2 if self.budget is None else self.budget
        return {
            **super().options(),
            "budget": budget,
            "random_start": True,
            "generator": self.generator,
        }
