"""APGD-CE: PGD whose step size halves at checkpoints where progress stalls, with momentum."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lab4.attacks.base import Attack
from lab4.attacks.engine import eval_mode


def checkpoints(iterations: int) -> list[int]:
    """The iterations ``w_j = ⌈p_j·N⌉`` after which APGD may halve its step, ``0 < w_j < N``:
    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`` (N = 100: 22, 41,
    57, 70, 80, 87, 93, 99), computed in hundredths so that the ceilings are exact."""
    points, previous, current = [], 0, 22
    while (point := -(-current * iterations // 100)) < iterations:
        if not points or point > points[-1]:
            points.append(point)
        previous, current = current, current + max(current - previous - 3, 6)
    return points


def apgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    radius: float,
    iterations: int = 100,
    targets: torch.Tensor | None = None,
    rho: float = 0.75,
    momentum: float = 0.75,
    random_start: bool = True,
    stop_on_success: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run on a batch (Algorithm 1 of Croce & Hein 2020, L∞): the adversarial images
    and the gradient steps each took. Every image has its own step size, best point and
    checkpoint tests; an image that succeeds stops (``stop_on_success``) and returns that
    iterate, the others return their highest-loss point. Arguments: see :class:`APGD`."""
    goal, sign = (labels, 1.0) if targets is None else (targets, -1.0)
    lower, upper = (images - radius).clamp(0, 1), (images + radius).clamp(0, 1)

    def evaluate(index: torch.Tensor, inputs: torch.Tensor):
        """Success, loss f (CE up, or −CE of the target) and ∇f at ``inputs``."""
        inputs = inputs.detach().requires_grad_(True)
        logits = model(inputs)
        loss = sign * nn.functional.cross_entropy(logits, goal[index], reduction="none")
        (gradient,) = torch.autograd.grad(loss.sum(), inputs)
        predicted = logits.argmax(dim=1)
        success = predicted != labels[index] if targets is None else predicted == goal[index]
        return success, loss.detach(), gradient

    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        x = images.detach().clone()
        if random_start:  # a random point of the ball's surface, as the reference code starts
            noise = 2 * torch.rand(x.shape, generator=generator, device="cpu").to(x.device) - 1
            peak = noise.flatten(1).abs().amax(dim=1).view(-1, *[1] * (x.dim() - 1))
            x = (x + radius * noise / peak).clamp(0, 1)
        everyone = torch.arange(len(x), device=x.device)
        success, loss, gradient = evaluate(everyone, x)
        previous, best, best_loss = x.clone(), x.clone(), loss.clone()
        best_gradient = gradient.clone()
        step = torch.full((len(x),), 2 * radius, dtype=x.dtype, device=x.device)
        steps = torch.zeros(len(x), dtype=torch.long, device=x.device)
        increases = torch.zeros(len(x), dtype=torch.long, device=x.device)
        best_at_check, reduced_at_check = loss.clone(), torch.zeros_like(success)
        active = ~success if stop_on_success else torch.ones_like(success)
        points, last_point = set(checkpoints(iterations)), 0
        shape = (-1, *[1] * (x.dim() - 1))
        for k in range(iterations):
            index = active.nonzero().squeeze(1)
            if len(index) == 0:
                break
            with torch.no_grad():
                here, low, high = x[index], lower[index], upper[index]
                ascent = here + step[index].view(shape) * gradient[index].sign()
                z = torch.minimum(torch.maximum(ascent, low), high)
                weight = 1.0 if k == 0 else momentum
                moved = here + (z - here) * weight + (here - previous[index]) * (1 - weight)
                previous[index], x[index] = here, torch.minimum(torch.maximum(moved, low), high)
            steps[index] += 1
            broken, loss_now, gradient_now = evaluate(index, x[index])
            gradient[index] = gradient_now
            increases[index] += loss_now > loss[index]
            loss[index] = loss_now
            improved = index[loss_now > best_loss[index]]
            best[improved], best_gradient[improved] = x[improved], gradient[improved]
            best_loss[improved] = loss[improved]
            success[index] |= broken
            if stop_on_success:
                active[index[broken]] = False
            if k + 1 in points:  # halve where progress stalled, and go back to the best point
                interval, last_point = k + 1 - last_point, k + 1
                index = index[active[index]]  # not those that just succeeded and stopped
                stalled = increases[index] < rho * interval
                stuck = ~reduced_at_check[index] & (best_loss[index] <= best_at_check[index])
                halve = index[stalled | stuck]
                reduced_at_check[index] = stalled | stuck
                best_at_check[index], increases[index] = best_loss[index], 0
                step[halve] /= 2
                x[halve], gradient[halve] = best[halve], best_gradient[halve]
        kept = success if stop_on_success else torch.zeros_like(success)
        adversarial = torch.where(kept.view(shape), x, best)
    return adversarial.detach(), steps


class APGD(Attack):
    """Auto-PGD with the cross-entropy loss (APGD-CE): Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020,
    https://arxiv.org/abs/2003.01690 (the first attack of AutoAttack/RobustBench).

    In the L∞ ball of radius ε (``budget``; ``eps`` when ``budget`` is ``None``) with step η:
    ``z = Π(x_k + η·sign(∇f(x_k)))``, ``x_{k+1} = Π(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))``
    (α = ``momentum`` = 0.75, none on the first step), f = CE(f(x), y) (targeted: −CE of the
    target), Π the projection onto the ball ∩ [0, 1]. η starts at 2ε and, per image, halves at
    the checkpoints :func:`checkpoints` when (1) fewer than ``rho``·(steps since the last
    checkpoint) increased f, or (2) η was not halved at the last checkpoint and the best f has
    not risen since; a halving restarts from the best point. The start is a random point of
    the ball's surface, as in the reference code (``random_start=False``: x).

    Differences from the reference code (auto-attack, torchattacks), where it departs from the
    paper: its first checkpoint compares f(x₁) with 0 instead of f(x₀), it halves when the
    count is ≤ ρ·interval (the paper: <), its condition (2) is off at the first checkpoint, and
    it spaces checkpoints by ``int(0.22N)``, … (the same as here for N = 100 and 200).

    Args: see :class:`~lab4.attacks.base.Attack`, and
        steps: iterations N (100), each one forward and backward pass (plus one at the start).
        restarts: runs from new random starts on the images not broken yet (AutoAttack's
            standard version: 1; its "plus" version: 5).
        stop_on_success: each image stops at its first success and returns it (``False``:
            every image takes every step and returns its highest-loss point, as adversarial
            training wants).
        random_start, rho (ρ = 0.75), momentum (α = 0.75): as above.

    Example::

        result = APGD.in_ball(model, 8 / 255).run(images, labels)  # APGD-CE, 100 iterations
        adversarial = APGD(model, 8 / 255, steps=100, restarts=5)(images, labels)
    """

    ball_step, ball_steps = 1.0, 100

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 100,
        budget: float | None = None,
        stop_on_success: bool = True,
        generator: torch.Generator | None = None,
        restarts: int = 1,
        *,
        random_start: bool = True,
        rho: float = 0.75,
        momentum: float = 0.75,
    ) -> None:
        super().__init__(model, eps, steps, budget, stop_on_success, generator, restarts)
        self.random_start, self.rho, self.momentum = random_start, rho, momentum

    @property
    def radius(self) -> float:
        """ε, the radius of the L∞ ball."""
        return self.eps if self.budget is None else self.budget

    def options(self) -> dict[str, Any]:
        return {
            "radius": self.radius,
            "iterations": self.steps,
            "rho": self.rho,
            "momentum": self.momentum,
            "random_start": self.random_start,
            "stop_on_success": self.stop_on_success,
            "generator": self.generator,
        }

    def perturb_once(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return apgd(self.model, images, labels, targets=targets, **self.options())
