"""``OODEvaluation``: score the ID test set and every OOD set with several detectors at test end.

A *detector* is any object with ``name: str`` and ``score(batch: ScoredBatch) -> Tensor`` (higher
= more in-distribution), and optionally ``fit(features, targets)`` called once with penultimate
features of ID training images (e.g. Mahalanobis, k-NN), and ``tune(model, id_batches,
ood_batches)`` where ``needs_tuning`` is true, called with *validation* ID and OOD images to choose
hyperparameters (e.g. ODIN's T and ε) before anything is scored on the test sets. Lab 4 provides
them (``lab4.detectors``); they are given in the config, so this module depends on no lab.

The DataModule provides the OOD sets through ``ood_dataloaders(split) -> {name: DataLoader}`` and
``validation_images(ood_set, size)`` (e.g. ``lab4.data.OODDataModule``), batches preprocessed like
the ID ones.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import nn

from common.features import penultimate
from common.metrics import ood_metrics
from common.plots import plot_ood_scores


@dataclass
class ScoredBatch:
    """What a detector may use: the model, [0, 1] images, their penultimate features, logits."""

    model: nn.Module
    images: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor


class Detector(Protocol):
    name: str

    def score(self, batch: ScoredBatch) -> torch.Tensor: ...


class OODEvaluation(L.Callback):
    """OOD metrics, tables and figures for the configured detectors at the end of ``test``
    (and, optionally, metrics on validation splits during training).

    Writes ``ood_metrics.csv``, ``ood_metrics.md`` and ``ood_<detector>.png`` (score histograms,
    ROC and PR curves per OOD set) into the run folder, logs ``ood/<set>/<detector>/<metric>``
    and the figures to W&B.

    Args:
        detectors: detector objects (``class_path`` entries in YAML).
        fit_images: ID training images used to fit detectors that need it (seeded choice).
        tune_on: the OOD set whose validation split tunes detectors that need it.
        tune_images: at most this many ID and this many OOD validation images for tuning.
        split: which OOD split to score (``"test"``; ``"val"`` is for choosing hyperparameters).
        every_n_val_epochs: also evaluate (on validation splits, logged only) every this many
            training epochs; ``None``: at test end only.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        fit_images: int = 10_000,
        tune_on: str = "imagenette",
        tune_images: int | None = 1000,
        split: str = "test",
        every_n_val_epochs: int | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.fit_images = fit_images
        self.tune_on = tune_on
        self.tune_images = tune_images
        self.split = split
        self.every_n_val_epochs = every_n_val_epochs
        self.seconds: dict[str, float] = defaultdict(float)  # per phase, last evaluation

    def _score_loader(self, trainer, model: nn.Module, loader) -> tuple[dict, float]:
        """Every detector's scores on a loader, and the accuracy where it has labels (≥ 0)."""
        scores: dict[str, list[torch.Tensor]] = {d.name: [] for d in self.detectors}
        correct = labelled = 0
        for images, targets in loader:
            images = images.to(trainer.strategy.root_device)
            # the ID batches' own preprocessing (e.g. uint8 → [0, 1]), for OOD batches too
            images, _ = trainer.datamodule.on_after_batch_transfer((images, None), 0)
            start = time.perf_counter()
            with torch.no_grad():
                features = penultimate(model, images)
                logits = model.classifier[-1](features)
            self.seconds["features"] += time.perf_counter() - start
            batch = ScoredBatch(model, images, features, logits)
            for detector in self.detectors:
                start = time.perf_counter()
                scores[detector.name].append(detector.score(batch).float().cpu())
                self.seconds[detector.name] += time.perf_counter() - start
            known = targets >= 0
            correct += (logits.argmax(dim=1).cpu()[known] == targets[known]).sum().item()
            labelled += known.sum().item()
        accuracy = correct / labelled if labelled else float("nan")
        return {name: torch.cat(parts) for name, parts in scores.items()}, accuracy

    def _fit(self, trainer, model: nn.Module) -> None:
        fitted = [d for d in self.detectors if hasattr(d, "fit")]
        if not fitted:
            return
        dataset = trainer.datamodule.splits["train"]
        generator = torch.Generator().manual_seed(0)
        index = torch.randperm(len(dataset), generator=generator)[: self.fit_images]
        features = []
        device = trainer.strategy.root_device
        for images in trainer.datamodule.preprocessed_batches(dataset.images[index], device):
            with torch.no_grad():
                features.append(penultimate(model, images).float().cpu())
        targets = dataset.targets[index]
        for detector in fitted:
            detector.fit(torch.cat(features), targets)

    def _tune(self, trainer, model: nn.Module) -> None:
        tuned = [d for d in self.detectors if getattr(d, "needs_tuning", False)]
        if not tuned:
            return
        data, device = trainer.datamodule, trainer.strategy.root_device
        id_images, ood_images = data.validation_images(self.tune_on, self.tune_images)
        for detector in tuned:
            start = time.perf_counter()
            id_batches = data.preprocessed_batches(id_images, device)
            ood_batches = data.preprocessed_batches(ood_images, device)
            auroc = detector.tune(model, id_batches, ood_batches)
            rank_zero_info(
                f"{detector.name} chosen on validation (ID val vs {self.tune_on} val, "
                f"{len(id_images)} + {len(ood_images)} images; best AUROC {auroc.max():.4f}) "
                f"in {time.perf_counter() - start:.1f} s"
            )

    def _evaluate(self, trainer, model: nn.Module, id_loader, ood_split: str):
        """Fit and tune what needs it, then score ID and OOD sets: metric rows and scores."""
        self.seconds = defaultdict(float)
        start = time.perf_counter()
        self._fit(trainer, model)
        self.seconds["fit"] = time.perf_counter() - start
        start = time.perf_counter()
        self._tune(trainer, model)
        self.seconds["tune"] = time.perf_counter() - start
        id_scores, id_accuracy = self._score_loader(trainer, model, id_loader)
        ood_scores = {
            name: self._score_loader(trainer, model, loader)[0]
            for name, loader in trainer.datamodule.ood_dataloaders(ood_split).items()
        }
        rank_zero_info(
            "OOD evaluation seconds: "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.seconds.items())
        )
        rows = [
            {
                "ood_set": name,
                "detector": d.name,
                **ood_metrics(id_scores[d.name], scores[d.name]),
                "id_accuracy": id_accuracy,
            }
            for name, scores in ood_scores.items()
            for d in self.detectors
        ]
        return rows, id_scores, ood_scores

    @staticmethod
    def _log(trainer, rows: list[dict], prefix: str) -> None:
        metrics = {
            f"{prefix}/{r['ood_set']}/{r['detector']}/{key}": r[key]
            for r in rows
            for key in ("auroc", "aupr_in", "aupr_out", "fpr95")
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        """Every ``every_n_val_epochs``: ID val vs the OOD ``val`` splits, logged as ``ood_val/…``
        (no files; the test sets stay untouched during training)."""
        epoch = trainer.current_epoch + 1
        if (
            not self.every_n_val_epochs
            or trainer.sanity_checking
            or epoch % self.every_n_val_epochs
        ):
            return
        loader = trainer.datamodule.val_dataloader()
        rows, _, _ = self._evaluate(trainer, pl_module.model, loader, "val")
        self._log(trainer, rows, "ood_val")

    @rank_zero_only
    def on_test_epoch_end(self, trainer, pl_module) -> None:
        model = pl_module.model
        loader = trainer.datamodule.test_dataloader()
        rows, id_scores, ood_scores = self._evaluate(trainer, model, loader, self.split)
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        self._write(rows, run_dir)
        figures = [
            plot_ood_scores(
                id_scores[d.name],
                {name: scores[d.name] for name, scores in ood_scores.items()},
                run_dir / f"ood_{d.name}.png",
                title=f"{type(model).__name__}: {d.name}",
            )
            for d in self.detectors
        ]
        self._log(trainer, rows, "ood")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="ood", images=[str(f) for f in figures])

    def _write(self, rows: list[dict], run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "ood_metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        lines = [
            f"ID test accuracy: {rows[0]['id_accuracy']:.4f}",
            "",
            "| OOD set | detector | AUROC ↑ | AUPR-In ↑ | AUPR-Out ↑ | FPR@95 ↓ |",
            "|---|---|---:|---:|---:|---:|",
        ] + [
            f"| {r['ood_set']} | {r['detector']} | {r['auroc']:.4f} | {r['aupr_in']:.4f} | "
            f"{r['aupr_out']:.4f} | {r['fpr95']:.4f} |"
            for r in rows
        ]
        (run_dir / "ood_metrics.md").write_text("\n".join(lines) + "\n")
