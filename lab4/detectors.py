"""Out-of-distribution detectors. Every score is "higher = more in-distribution".

The formulas are plain functions (of logits, or of the model and images for ODIN); the classes
below wrap them as detectors for :class:`common.callbacks.OODEvaluation` (``name`` and
``score(batch)``; feature-based ones are ``fit`` on in-distribution training features first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from common.callbacks.ood_evaluation import ScoredBatch
from common.checkpoints import load_classifier_checkpoint
from common.features import penultimate
from common.metrics import ood_metrics
from lab4.models import ConvAutoencoder, reconstruction_error


def max_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability (Hendrycks & Gimpel 2017), optionally temperature-scaled."""
    return (logits / temperature).softmax(dim=1).amax(dim=1)


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Maximum logit (Hendrycks et al. 2022): MSP without the softmax's normalisation."""
    return logits.amax(dim=1)


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy T·logsumexp(logits / T) (Liu et al. 2020)."""
    return temperature * torch.logsumexp(logits / temperature, dim=1)


def odin_gradient_sign(model: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    """sign(∇ₓ CE(f(x)/T, ŷ)) with ŷ the predicted class: ODIN's perturbation direction.

    It does not depend on ε, so a search over ε reuses it (one backward pass per T).
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
) -> torch.Tensor:
    """ODIN (Liang et al. 2018): max softmax at temperature T of x − ε·sign(∇ₓ loss).

    The step lowers the loss of the predicted class, which helps ID images more than OOD ones.
    ε is in [0, 1] pixel units (the model normalises inside); the input stays in [0, 1].
    """
    if epsilon == 0:  # no perturbation: temperature-scaled MSP, no gradient needed
        return max_softmax(model(images), temperature)
    if gradient_sign is None:
        gradient_sign = odin_gradient_sign(model, images, temperature)
    perturbed = (images - epsilon * gradient_sign).clamp(0, 1)
    return max_softmax(model(perturbed), temperature)


def odin_grid(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    temperatures: Sequence[float],
    epsilons: Sequence[float],
    reuse_gradient: bool = True,
) -> torch.Tensor:
    """ODIN scores (|T|, |ε|, N) of every image over a grid.

    With ``reuse_gradient`` each batch takes one forward pass for every T (the logits do not
    depend on T), one backward pass per T whose gradient sign is shared by every ε, and ε = 0 is
    read off those logits: 1 + |T| passes plus the perturbed forwards, instead of the naive loop's
    gradient for every (T, ε) (``False``, kept for timing).
    """
    per_batch = []
    for images in batches:
        grid = torch.empty(len(temperatures), len(epsilons), len(images))
        if not reuse_gradient:
            for i, temperature in enumerate(temperatures):
                for j, epsilon in enumerate(epsilons):
                    sign = odin_gradient_sign(model, images, temperature)
                    grid[i, j] = odin(model, images, temperature, epsilon, sign).float().cpu()
            per_batch.append(grid)
            continue
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
                    grid[i, j] = odin(model, images, temperature, epsilon, signs[i]).float().cpu()
        per_batch.append(grid)
    return torch.cat(per_batch, dim=2)


class Mahalanobis:
    """Mahalanobis distance to the closest class mean (Lee et al. 2018), negated.

    Class means and one shared covariance are estimated from ID training features.
    """

    name = "mahalanobis"

    def fit(self, features: torch.Tensor, targets: torch.Tensor) -> Mahalanobis:
        features = features.double()
        classes = targets.unique()
        self.means = torch.stack([features[targets == c].mean(dim=0) for c in classes])
        centred = features - self.means[torch.searchsorted(classes, targets)]
        covariance = centred.T @ centred / len(features)
        self.precision = torch.linalg.pinv(covariance, hermitian=True)
        return self

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        means, precision = self.means.to(features.device), self.precision.to(features.device)
        diff = features.double()[:, None, :] - means[None]  # (N, C, D)
        distances = torch.einsum("ncd,de,nce->nc", diff, precision, diff)
        return -distances.amin(dim=1).float()

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return self.score_features(batch.features)


class KNN:
    """Distance to the k-th nearest ID training feature after L2 normalisation (Sun et al.
    2022), negated.

    Args:
        k: the neighbour, or
        ks: a grid; :meth:`tune` keeps the k with the best validation AUROC (as the paper
            chooses k on validation data).
    """

    def __init__(self, k: int = 50, ks: list[int] | None = None) -> None:
        self.ks = ks or [k]
        self._choose(k)

    def _choose(self, k: int) -> None:
        self.k = k
        self.name = f"knn{k}"

    @property
    def needs_tuning(self) -> bool:
        return len(self.ks) > 1

    def fit(self, features: torch.Tensor, targets: torch.Tensor | None = None) -> KNN:
        self.bank = nn.functional.normalize(features.float(), dim=1)
        return self

    def distances(self, features: torch.Tensor, ks: Sequence[int], chunk: int = 1024):
        """Distances (N, len(ks)) to the ks-th nearest bank features."""
        queries = nn.functional.normalize(features.float(), dim=1)
        bank = self.bank.to(features.device)
        index = torch.tensor([min(k, len(bank)) - 1 for k in ks], device=features.device)
        nearest = [
            torch.cdist(part, bank).topk(int(index.max()) + 1, dim=1, largest=False).values
            for part in queries.split(chunk)
        ]
        return torch.cat(nearest)[:, index]

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        return -self.distances(features, [self.k])[:, 0]

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> torch.Tensor:
        """Choose k by validation AUROC; returns the AUROC per k."""
        with torch.no_grad():
            id_scores, ood_scores = (
                -torch.cat([self.distances(penultimate(model, x), self.ks) for x in batches])
                for batches in (id_batches, ood_batches)
            )
        auroc = torch.tensor(
            [ood_metrics(id_scores[:, i], ood_scores[:, i])["auroc"] for i in range(len(self.ks))]
        )
        self._choose(self.ks[int(auroc.argmax())])
        return auroc

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return self.score_features(batch.features)


class _TemperatureDetector:
    """A score of the logits at a temperature; subclasses name the score function."""

    prefix: str

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature
        self.name = self.prefix if temperature == 1 else f"{self.prefix}_T{temperature:g}"

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return type(self).function(batch.logits, self.temperature)


class MaxSoftmax(_TemperatureDetector):
    """Detector: :func:`max_softmax` at ``temperature``."""

    prefix, function = "msp", staticmethod(max_softmax)


class MaxLogit:
    """Detector: :func:`max_logit`."""

    name = "max_logit"

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return max_logit(batch.logits)


class Energy(_TemperatureDetector):
    """Detector: :func:`energy` at ``temperature``."""

    prefix, function = "energy", staticmethod(energy)


class ODIN:
    """Detector: :func:`odin` with temperature T and input-perturbation size ε.

    Args:
        temperature, epsilon: fixed hyperparameters (the paper's defaults), or
        temperatures, epsilons: a grid; :meth:`tune` (called by ``OODEvaluation`` on validation
            ID and OOD images, never the test ones) keeps the pair with the best AUROC.
    """

    def __init__(
        self,
        temperature: float = 1000.0,
        epsilon: float = 0.0014,
        temperatures: list[float] | None = None,
        epsilons: list[float] | None = None,
    ) -> None:
        self.grid = (temperatures or [temperature], epsilons or [epsilon])
        self._choose(temperature, epsilon)

    def _choose(self, temperature: float, epsilon: float) -> None:
        self.temperature, self.epsilon = temperature, epsilon
        self.name = f"odin_T{temperature:g}_eps{epsilon:g}"

    @property
    def needs_tuning(self) -> bool:
        return len(self.grid[0]) * len(self.grid[1]) > 1

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> torch.Tensor:
        """Choose (T, ε) by validation AUROC; returns the AUROC grid (|T|, |ε|)."""
        id_scores = odin_grid(model, id_batches, *self.grid)
        ood_scores = odin_grid(model, ood_batches, *self.grid)
        temperatures, epsilons = self.grid
        auroc = torch.tensor(
            [
                [
                    ood_metrics(id_scores[i, j], ood_scores[i, j])["auroc"]
                    for j in range(len(epsilons))
                ]
                for i in range(len(temperatures))
            ]
        )
        best_i, best_j = divmod(int(auroc.argmax()), len(epsilons))
        self._choose(temperatures[best_i], epsilons[best_j])
        return auroc

    def score(self, batch: ScoredBatch) -> torch.Tensor:
        return odin(batch.model, batch.images, self.temperature, self.epsilon)


class ReconstructionError:
    """Detector: negated reconstruction error of an autoencoder trained on ID images
    (``python -m lab4 fit --config configs/lab4/autoencoder_cifar10.yaml``).

    The checkpoint is read when the first batch is scored, so a config naming it can be
    smoke-run (``fit``) before the autoencoder exists.
    """

    name = "autoencoder"

    def __init__(self, checkpoint: str, channels: list[int] | None = None) -> None:
        self.checkpoint = checkpoint
        self.channels = channels
        self._autoencoder: ConvAutoencoder | None = None

    @property
    def autoencoder(self) -> ConvAutoencoder:
        if self._autoencoder is None:
            autoencoder = ConvAutoencoder(*([self.channels] if self.channels else []))
            load_classifier_checkpoint(autoencoder, self.checkpoint)
            self._autoencoder = autoencoder.eval()
        return self._autoencoder

    @torch.no_grad()
    def score(self, batch: ScoredBatch) -> torch.Tensor:
        autoencoder = self.autoencoder.to(batch.images.device)
        return -reconstruction_error(autoencoder, batch.images)
