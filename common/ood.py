"""The contract of an out-of-distribution detector, shared by the labs' detectors and by
:class:`common.callbacks.OODEvaluation`.

A detector scores a batch of images, **higher = more in-distribution** (every metric, table and
figure relies on this direction; :func:`common.metrics.ood_metrics` treats ID as positive).
This module imports no Lightning, so detectors stay plain classes that can be used and tested
without a Trainer.

Adding a detector: subclass :class:`Detector` in one file under ``lab4/detectors/``, re-export it
from ``lab4/detectors/__init__.py``, add a test, and name it in a config's detector list.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from common.features import features_and_logits, head
from common.metrics import ood_metrics

#: ``progress(batches, description, images)``: wraps batches in a progress bar (or not)
Progress = Callable[[Iterable[torch.Tensor], str, int], Iterable[torch.Tensor]]


def no_progress(batches: Iterable[torch.Tensor], description: str, images: int):
    return batches


@dataclass
class ScoredBatch:
    """What a detector may use for one batch: the network, its [0, 1] input images, and the
    penultimate features and logits of that network's one forward pass over them."""

    model: nn.Module
    images: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor


@dataclass
class TuningResult:
    """Validation AUROC over a detector's hyperparameter grid.

    Args:
        grid: hyperparameter name → candidate values, in the order of ``auroc``'s dimensions
            (e.g. ``{"temperature": [1, 10], "epsilon": [0, 0.001]}``).
        auroc: the AUROC at every grid point, shape ``[len(values) for values in grid.values()]``.
    """

    grid: dict[str, list[float]]
    auroc: torch.Tensor

    @classmethod
    def from_scores(
        cls, grid: dict[str, list[float]], id_scores: torch.Tensor, ood_scores: torch.Tensor
    ) -> TuningResult:
        """The AUROC at every grid point from ID and OOD scores of shape ``(*grid shape, N)``."""
        shape = [len(values) for values in grid.values()]
        pairs = zip(id_scores.reshape(-1, id_scores.shape[-1]),
                    ood_scores.reshape(-1, ood_scores.shape[-1]), strict=True)  # fmt: skip
        auroc = torch.tensor([ood_metrics(ids, oods)["auroc"] for ids, oods in pairs])
        return cls(grid, auroc.view(shape))

    @property
    def best(self) -> dict[str, float]:
        """The grid point with the highest AUROC (the first one in grid order among ties)."""
        index = torch.unravel_index(self.auroc.argmax(), self.auroc.shape)
        return {
            name: values[int(i)] for (name, values), i in zip(self.grid.items(), index, strict=True)
        }


def require_head(head: nn.Linear | None, detector: str) -> nn.Linear:
    """``head`` for a detector whose :meth:`Detector.fit` needs the network's last layer (its
    weights), with one clear error when it was not given."""
    if head is None:
        raise ValueError(
            f"{detector} needs the network's last layer: fit(..., head=common.features.head(model))"
        )
    return head


class Detector(ABC):
    """Base of the OOD detectors: :meth:`score` gives one score per image, higher = more
    in-distribution.

    ``name`` labels the detector's rows and figures (a tuned detector renames itself after the
    hyperparameters it chose, e.g. ``odin_T10_eps0.004``). Two optional capabilities are
    declared by flags, which :class:`common.callbacks.OODEvaluation` reads before testing:

    - ``needs_fitting``: :meth:`fit` is called once with penultimate features of ID *training*
      images (class means, a feature bank);
    - ``needs_tuning``: :meth:`tune` is called with ID and OOD *validation* images (never the
      test ones) and keeps the hyperparameters with the best validation AUROC.
    """

    name: str
    needs_fitting: bool = False
    needs_tuning: bool = False

    @abstractmethod
    def score(self, batch: ScoredBatch) -> torch.Tensor:
        """Scores (N,) of the batch's images, higher = more in-distribution."""

    def fit(
        self, features: torch.Tensor, targets: torch.Tensor, head: nn.Linear | None = None
    ) -> Detector:
        """Fit on ID training features (N, D), their labels (N,) and the network's last layer
        ``head`` (features → logits, :func:`common.features.head`); nothing to fit by default."""
        return self

    def tune(
        self,
        model: nn.Module,
        id_batches: Iterable[torch.Tensor],
        ood_batches: Iterable[torch.Tensor],
    ) -> TuningResult:
        """Choose hyperparameters on validation batches of [0, 1] images; return the grid."""
        raise NotImplementedError(f"{type(self).__name__} has no hyperparameters to tune")


@dataclass
class Tuned:
    """One detector's tuning: what it chose from, on how many ID and OOD validation images."""

    detector: Detector
    result: TuningResult
    images: tuple[int, int]
    seconds: float


def fit_detectors(
    detectors: Iterable[Detector],
    network: nn.Module,
    data: Any,
    num_images: int,
    device: torch.device | str,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: Progress = no_progress,
) -> list[Detector]:
    """Fit the detectors that need it on the penultimate features of ``num_images`` ID training
    images (a seeded choice from ``data.splits["train"]``, prepared by
    ``data.preprocessed_batches``); returns the fitted ones. ``forward``: see
    :func:`common.features.features_and_logits`."""
    fitted = [d for d in detectors if d.needs_fitting]
    if not fitted:
        return []
    dataset = data.splits["train"]
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:num_images]
    batches = progress(
        data.preprocessed_batches(dataset.images[index], device), "ID training features", len(index)
    )
    passes = features_and_logits(network, batches, forward)
    features = torch.cat([features.float().cpu() for _, features, _ in passes])
    for detector in fitted:
        detector.fit(features, dataset.targets[index], head=head(network))
    return fitted


def tune_detectors(
    detectors: Iterable[Detector],
    network: nn.Module,
    data: Any,
    tune_on: str,
    num_images: int | None,
    device: torch.device | str,
    progress: Progress = no_progress,
) -> list[Tuned]:
    """Tune the detectors that need it on ID validation images vs ``tune_on``'s validation
    images (``data.validation_images``, at most ``num_images`` of each; never test images)."""
    tuned = []
    id_images, ood_images = data.validation_images(tune_on, num_images)
    for detector in (d for d in detectors if d.needs_tuning):
        start = time.perf_counter()
        label = type(detector).__name__
        result = detector.tune(
            network,
            progress(data.preprocessed_batches(id_images, device),
                     f"tuning {label} on ID val", len(id_images)),
            progress(data.preprocessed_batches(ood_images, device),
                     f"tuning {label} on {tune_on} val", len(ood_images)),
        )  # fmt: skip
        seconds = time.perf_counter() - start
        tuned.append(Tuned(detector, result, (len(id_images), len(ood_images)), seconds))
    return tuned
