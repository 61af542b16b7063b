"""ODIN (Liang, Li & Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection in
Neural Networks", ICLR 2018, https://arxiv.org/abs/1706.02690): temperature scaling plus a small
input step that raises the predicted class's softmax, which helps ID images more than OOD ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from jsonargparse.typing import NonNegativeFloat, PositiveFloat
from torch import nn

from common.ood import Detector, ScoredBatch, TuningResult
from lab4.detectors.msp import max_softmax


def odin_gradient_sign(model: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    """sign(∇ₓ CE(f(x)/T, ŷ)) with ŷ the predicted class: ODIN's perturbation direction.

    It does not depend on ε, so a search over ε reuses it (see :func:`odin_grid`). Works inside
    ``torch.inference_mode`` (Lightning's test loop) and leaves the parameters' ``.grad`` alone.
    """
    with torch.inference_mode(False), torch.enable_grad():
        inputs = images.clone().requires_grad_(True)
        logits = model(inputs) / temperature
        loss = nn.functional.cross_entropy(logits, logits.argmax(dim=1), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    return gradient.sign()


@torch.no_grad()
def odin(
    model: nn.Module,
    images: torch.Tensor,
    temperature: float = 1000.0,
    epsilon: float = 0.0014,
    gradient_sign: torch.Tensor | None = None,
    clamp: bool = True,
) -> torch.Tensor:
    """ODIN score (N,) of [0, 1] images (N, C, H, W): max_c softmax(f(x̃) / T)_c with
    x̃ = clamp(x − ε·sign(∇ₓ CE(f(x)/T, ŷ)), 0, 1).

    ε is in [0, 1] pixel units (the model normalises inside); ε = 0 is temperature-scaled MSP
    and needs no gradient. ``gradient_sign``: a precomputed :func:`odin_gradient_sign`.
    ``clamp``: True, the perturbed image stays a valid image, as in this project; False, as the
    original code, which perturbs without clamping (pixels may leave [0, 1]).
    """
    if epsilon == 0:
        return max_softmax(model(images), temperature)
    if gradient_sign is None:
        gradient_sign = odin_gradient_sign(model, images, temperature)
    perturbed = images - epsilon * gradient_sign
    if clamp:
        perturbed = perturbed.clamp(0, 1)
    return max_softmax(model(perturbed), temperature)


def odin_grid(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    temperatures: Sequence[float],
    epsilons: Sequence[float],
    clamp: bool = True,
) -> torch.Tensor:
    """ODIN scores (|T|, |ε|, N) of every image of ``batches`` over a grid, sharing work
    (``clamp`` as in :func:`odin`).

    Per batch: one forward pass for every T (the logits do not depend on T), one backward pass
    per T whose gradient sign serves every ε, ε = 0 read off those logits, then the perturbed
    forwards — instead of a gradient for every (T, ε) (``benchmarks/odin_speed.py`` times both).
    """
    per_batch = []
    for images in batches:
        grid = torch.empty(len(temperatures), len(epsilons), len(images))
        with torch.inference_mode(False), torch.enable_grad():
            inputs = images.clone().requires_grad_(True)
            logits = model(inputs)
            predicted = logits.argmax(dim=1)
            signs = []
            for i, temperature in enumerate(temperatures):
                loss = nn.functional.cross_entropy(logits / temperature, predicted, reduction="sum")
                last = i == len(temperatures) - 1
                signs.append(torch.autograd.grad(loss, inputs, retain_graph=not last)[0].sign())
        logits = logits.detach()
        for i, temperature in enumerate(temperatures):
            for j, epsilon in enumerate(epsilons):
                if epsilon == 0:
                    grid[i, j] = max_softmax(logits, temperature).float().cpu()
                else:
                    grid[i, j] = (
                        odin(model, images, temperature, epsilon, signs[i], clamp).float().cpu()
                    )
        per_batch.append(grid)
    return torch.cat(per_batch, dim=2)


class ODIN(Detector):
    """Detector: :func:`odin` with temperature T and input step ε.

    Args:
        temperature, epsilon: fixed hyperparameters (default: the paper's CIFAR-10 choice,
            T = 1000, ε = 0.0014), or
        temperatures, epsilons: a grid; :meth:`tune` (called by ``OODEvaluation`` on validation
            ID and OOD images, never the test ones) keeps the pair with the best AUROC.
        clamp: True (default), the perturbed image stays a valid image, as in this project;
            False, as the original code, which perturbs without clamping (the name then ends
            with ``_unclamped``).

    Example:
        >>> detector = ODIN(temperatures=[1, 1000], epsilons=[0, 0.002])
        >>> detector.tune(network, [id_val_images], [ood_val_images]).auroc.shape
        torch.Size([2, 2])
    """

    def __init__(
        self,
        temperature: PositiveFloat = 1000.0,
        epsilon: NonNegativeFloat = 0.0014,
        temperatures: list[PositiveFloat] | None = None,
        epsilons: list[NonNegativeFloat] | None = None,
        clamp: bool = True,
    ) -> None:
        self.clamp = clamp
        self.grid = {"temperature": temperatures or [temperature], "epsilon": epsilons or [epsilon]}
        self._choose(temperature, epsilon)

    def _choose(self, temperature: float, epsilon: float) -> None:
        self.temperature, self.epsilon = temperature, epsilon
        self.name = f"odin_T{temperature:g}_eps{epsilon:g}" + ("" if self.clamp else "_unclamped")

    @property
    def needs_tuning(self) -> bool:
        return len(self.grid["temperature"]) * len(self.grid["epsilon"]) > 1

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> TuningResult:
        """Keep the (T, ε) with the best validation AUROC; the AUROC grid is (|T|, |ε|)."""
        id_scores, ood_scores = (
            odin_grid(model, batches, *self.grid.values(), clamp=self.clamp)
            for batches in (id_batches, ood_batches)
        )
        result = TuningResult.from_scores(self.grid, id_scores, ood_scores)
        self._choose(**result.best)
        return result

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return odin(batch.model, batch.images, self.temperature, self.epsilon, clamp=self.clamp)
