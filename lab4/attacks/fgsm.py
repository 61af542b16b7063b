"""FGSM: one signed-gradient step on every image."""

from __future__ import annotations

from typing import Any

from lab4.attacks.base import Attack


class FGSM(Attack):
    """The fast gradient sign method: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
    Adversarial Examples", ICLR 2015, https://arxiv.org/abs/1412.6572.

    ``x' = clip[0,1](x + ε·sign(∇ₓ CE(f(x), y)))`` for every image, successful or not
    (targeted: ``x − ε·sign(∇ₓ CE(f(x), t))``); ``steps``, ``stop_on_success`` and ``restarts``
    do not apply. In the L∞ ball of radius ε (:meth:`~lab4.attacks.base.Attack.in_ball`): one
    step of ε. Arguments: see :class:`~lab4.attacks.base.Attack`.

    Example::

        adversarial = FGSM(model, eps=2 / 255)(images, labels)
        adversarial = FGSM.in_ball(model, 8 / 255)(images, labels)  # the same as eps=8/255
    """

    ball_step, ball_steps = 1.0, 1

    def options(self) -> dict[str, Any]:
        return {"iterations": 1, "budget": self.budget, "stop_on_success": False}
