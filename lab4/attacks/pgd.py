"""PGD: iterative FGSM from a random point of the L∞ ball, with random restarts."""

from __future__ import annotations

from typing import Any

from lab4.attacks.iterative import IterativeFGSM


class PGD(IterativeFGSM):
    """Projected gradient descent: Madry et al., "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018, https://arxiv.org/abs/1706.06083.

    :class:`~lab4.attacks.iterative.IterativeFGSM` started from ``x₀ = clip[0,1](x + u)``,
    ``u ~ U(−budget, budget)`` per pixel, every step projected back onto the ball:
    ``x_{k+1} = Π(clip[0,1](x_k + α·sign(∇ₓ CE(f(x_k), y))))`` with α = ``eps``. ``budget``
    defaults to ``steps·ε/2`` (the steps can reach the ball's surface and move along it).
    ``restarts`` runs per image, each from a new random start, on the images not broken yet (an
    image is broken if any run breaks it; it keeps the first successful run's image, else the
    highest-loss run's). **PGD-k in the ball of radius ε**, as robustness is reported:
    ``PGD.in_ball(model, ε, steps=k)``, α = ε/4, k = 20 by default.

    Arguments: see :class:`~lab4.attacks.base.Attack`; ``generator`` draws the starts;
    ``random_start=False`` starts from x (then one run: iterative FGSM in the ball).

    Example::

        adversarial = PGD(model, eps=2 / 255, steps=7, budget=8 / 255)(images, labels)
        result = PGD.in_ball(model, 8 / 255, restarts=5).run(images, labels)  # PGD-20, 5 restarts
    """

    def __init__(self, *args, random_start: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.random_start = random_start

    def options(self) -> dict[str, Any]:
        budget = self.steps * self.eps / 2 if self.budget is None else self.budget
        return {
            **super().options(),
            "budget": budget,
            "random_start": self.random_start,
            "generator": self.generator,
        }
