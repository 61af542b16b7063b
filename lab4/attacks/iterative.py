"""Iterative FGSM: steps of ε, each image stopping as soon as it is fooled."""

from __future__ import annotations

from typing import Any

from lab4.attacks.base import Attack


class IterativeFGSM(Attack):
    """The basic iterative method: Kurakin, Goodfellow & Bengio, "Adversarial examples in the
    physical world", ICLR workshop 2017, https://arxiv.org/abs/1607.02533.

    ``x₀ = x``, ``x_{k+1} = Π(clip[0,1](x_k + ε·sign(∇ₓ CE(f(x_k), y))))`` for at most
    ``steps`` steps, Π the projection onto the L∞ ball of radius ``budget`` around x (none by
    default). With ``stop_on_success`` (the default) each image stops at its first success while
    the rest of the batch goes on, so ``run`` counts the steps each image needed. In the L∞ ball
    of radius ε (:meth:`~lab4.attacks.base.Attack.in_ball`): 20 steps of ε/4 from x (PGD-20
    without its random start). Arguments: see :class:`~lab4.attacks.base.Attack`.

    Example::

        result = IterativeFGSM(model, eps=1 / 255, steps=10).run(images, labels)
        result.iterations  # steps taken by each image
    """

    def options(self) -> dict[str, Any]:
        return {
            "iterations": self.steps,
            "budget": self.budget,
            "stop_on_success": self.stop_on_success,
        }
