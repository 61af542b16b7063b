"""Robustness on the test set: attacks over a DataModule's test images, and a callback that
reports them at the end of ``test`` (beside the OOD metrics) for any classifier."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from common.data import CIFAR10DataModule
from lab4.attacks import AttackResult, attack, attack_metrics


def attack_sample(data: CIFAR10DataModule, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random choice of ``num_images`` test images (uint8) and labels, in test-set
    order. Not the *first* images: image-folder test sets are sorted by class."""
    dataset = data.splits["test"]
    generator = torch.Generator().manual_seed(data.seed)
    index = torch.randperm(len(dataset), generator=generator)[:num_images].sort().values
    return dataset.images[index], dataset.targets[index]


def attack_test_images(
    model: nn.Module,
    data: CIFAR10DataModule,
    name: Literal["fgsm", "iterative", "pgd"],
    epsilon: float,
    num_images: int,
    iterations: int,
    budget: float | None,
    target: int | None,
    device: torch.device,
) -> AttackResult:
    """One attack (ε = ``epsilon`` in [0, 1] units) over :func:`attack_sample`'s test images,
    batch by batch: ``fgsm`` (one step, every image), ``iterative`` (per-sample stopping),
    ``pgd`` (iterative from a random start in the ``budget`` ball)."""
    images_uint8, all_labels = attack_sample(data, num_images)
    generator = torch.Generator().manual_seed(data.seed)
    results = []
    batches = zip(
        data.preprocessed_batches(images_uint8, device),
        all_labels.split(data.batch_size),
        strict=True,
    )
    for images, labels in batches:
        labels = labels.to(device)
        targets = None if target is None else torch.full_like(labels, target)
        results.append(
            attack(
                model,
                images,
                labels,
                epsilon,
                iterations=1 if name == "fgsm" else iterations,
                budget=budget,
                random_start=name == "pgd",
                targets=targets,
                stop_on_success=name != "fgsm",
                generator=generator,
            )
        )
    return AttackResult.cat(results)


class RobustnessEvaluation(L.Callback):
    """Attack metrics (:func:`lab4.attacks.attack_metrics`) at the end of ``test``.

    Writes ``robustness.csv`` and ``robustness.md`` into the run folder and logs
    ``robust/<attack>/eps<ε>/<metric>``. The model's modes are restored after each attack, so
    it observes only.

    Args:
        epsilons: ε per step, in 1/255 pixel units.
        attacks: among ``fgsm``, ``iterative``, ``pgd``.
        iterations: steps of the iterative attacks.
        num_images: this many test images (a seeded random choice, :func:`attack_sample`).
    """

    def __init__(
        self,
        epsilons: Sequence[float] = (1, 2, 4),
        attacks: Sequence[Literal["fgsm", "iterative", "pgd"]] = ("fgsm", "iterative"),
        iterations: int = 10,
        num_images: int = 1000,
    ) -> None:
        self.epsilons = list(epsilons)
        self.attacks = list(attacks)
        self.iterations = iterations
        self.num_images = num_images

    @rank_zero_only
    def on_test_epoch_end(self, trainer, pl_module) -> None:
        rows = []
        for name in self.attacks:
            for epsilon in self.epsilons:
                result = attack_test_images(
                    pl_module.model, trainer.datamodule, name, epsilon / 255, self.num_images,
                    self.iterations, None, None, trainer.strategy.root_device,
                )  # fmt: skip
                rows.append({"attack": name, "epsilon": epsilon, **attack_metrics(result)})
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "robustness.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        lines = [
            "| attack | ε (/255) | success rate | mean iters | conf. drop | robust acc |",
            "|---|---:|---:|---:|---:|---:|",
        ] + [
            f"| {r['attack']} | {r['epsilon']:g} | {r['success_rate']:.4f} | "
            f"{r['mean_iterations']:.2f} | {r['confidence_drop']:.4f} | "
            f"{r['robust_accuracy']:.4f} |"
            for r in rows
        ]
        (run_dir / "robustness.md").write_text("\n".join(lines) + "\n")
        metrics = {
            f"robust/{r['attack']}/eps{r['epsilon']:g}/{key}": r[key]
            for r in rows
            for key in ("success_rate", "mean_iterations", "confidence_drop", "robust_accuracy")
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
