"""``RobustnessEvaluation``: an attack sweep over the test images at the end of ``test``.

The one mechanism behind every attack table of Lab 4: ``python -m lab4 test --config
configs/lab4/attacks/fgsm_sweep.yaml`` (the ε sweep of one model, untargeted or targeted) and
the robustness rows of the classifiers' own test runs (``configs/lab4/cnn_cifar10.yaml``, the
adversarially-trained ones) are this callback with other settings.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from common.commands import write_text_atomic
from common.data.datamodule import ImageDataModule
from lab4.attacks import ATTACKS, REPORTED_METRICS, Attack, AttackName, AttackResult, attack_metrics
from lab4.plots import plot_attack_examples, plot_attack_sweep


def attack_sample(data: ImageDataModule, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_images`` test images (uint8) and labels, a seeded random choice made by identity:
    the source-file positions ``randperm(len, seed)[:num_images]``, sorted, whatever order the
    DataModule serves the test split in, so every model and run attacks the same images in the
    same order. Not the *first* images: image-folder test sets are sorted by class."""
    dataset = data.splits["test"]
    generator = torch.Generator().manual_seed(data.seed)
    ids = torch.randperm(len(dataset), generator=generator)[:num_images].sort().values
    return dataset.by_ids(ids)


def attack_test_images(
    attack: Attack,
    data: ImageDataModule,
    num_images: int,
    target: int | None,
    device: torch.device,
) -> AttackResult:
    """``attack`` over :func:`attack_sample`'s images, batch by batch, toward class ``target``
    (``None``: untargeted)."""
    images_uint8, all_labels = attack_sample(data, num_images)
    results = []
    batches = zip(
        data.preprocessed_batches(images_uint8, device),
        all_labels.split(data.batch_size),
        strict=True,
    )
    for images, labels in batches:
        labels = labels.to(device)
        targets = None if target is None else torch.full_like(labels, target)
        results.append(attack.run(images, labels, targets))
    return AttackResult.cat(results)


class RobustnessEvaluation(L.Callback):
    """Every attack × ε on the same test images at the end of ``test``
    (:func:`lab4.attacks.attack_metrics`), the model's modes restored after each attack.

    Writes into the run folder (``trainer.log_dir``): ``robustness.json`` (label, target,
    settings, rows with the seconds each attack took), ``robustness.csv``, ``robustness.md``,
    ``robustness_sweep.png`` (metrics vs ε) and ``robustness_examples.png`` (original |
    amplified perturbation | adversarial, for the middle ε of the last attack). Logs through the
    Trainer's loggers: metrics ``robust/<attack>/eps<ε>/<metric>`` (targeted: ``robust_<target>``),
    and on W&B the figures and the table.

    Args:
        epsilons: ε per step, in 1/255 pixel units.
        attacks: names from :data:`lab4.attacks.ATTACKS`.
        iterations: at most this many steps of the iterative attacks.
        budget: total L∞ budget in steps (``budget·ε``); ``None``: none (PGD: its default).
        target: a class name of the DataModule: a targeted sweep (success = predicted as it;
            images of that class are left out of the success rate); ``None``: untargeted.
        num_images: this many test images (:func:`attack_sample`).
        examples: rows of the example figure (0: none).
        label: the model's name in titles and ``robustness.json`` (default: the run folder's
            name, ``trainer.default_root_dir``).
    """

    def __init__(
        self,
        epsilons: Sequence[PositiveFloat] = (1, 2, 4),
        attacks: Sequence[AttackName] = ("fgsm", "iterative"),
        iterations: PositiveInt = 10,
        budget: PositiveFloat | None = None,
        target: str | None = None,
        num_images: PositiveInt = 1000,
        examples: NonNegativeInt = 6,
        label: str | None = None,
    ) -> None:
        if not epsilons or not attacks:
            raise ValueError("RobustnessEvaluation needs at least one epsilon and one attack")
        self.epsilons, self.attacks = list(epsilons), list(attacks)
        self.iterations, self.budget, self.target = iterations, budget, target
        self.num_images, self.examples, self.label = num_images, examples, label

    @property
    def shown(self) -> tuple[str, float]:
        """The (attack, ε) of the example figure: the last attack at the middle ε."""
        return self.attacks[-1], self.epsilons[len(self.epsilons) // 2]

    @property
    def mode(self) -> str:
        return "untargeted" if self.target is None else f"targeted → {self.target}"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Check the target class before any work: a typo fails in one line with the choices."""
        names = trainer.datamodule.class_names
        if self.target is not None and self.target not in names:
            raise ValueError(
                f"unknown target class {self.target!r}; choose among {', '.join(names)}"
            )

    def sweep(self, trainer: L.Trainer, model: torch.nn.Module) -> tuple[list[dict], AttackResult]:
        """The metric rows of every attack × ε, and the result shown in the example figure."""
        data, device = trainer.datamodule, trainer.strategy.root_device
        target = None if self.target is None else data.class_names.index(self.target)
        rows, example = [], None
        for name in self.attacks:
            for epsilon in self.epsilons:
                start = time.perf_counter()
                step = epsilon / 255
                attack = ATTACKS[name](
                    model,
                    step,
                    steps=self.iterations,
                    budget=None if self.budget is None else self.budget * step,
                    generator=torch.Generator().manual_seed(data.seed),
                )
                result = attack_test_images(attack, data, self.num_images, target, device)
                row = {"attack": name, "epsilon": epsilon, **attack_metrics(result)}
                row["seconds"] = time.perf_counter() - start
                rank_zero_info(
                    f"{name} ε={epsilon:g}/255: "
                    + ", ".join(f"{key} {row[key]:.4f}" for key in (*REPORTED_METRICS, "seconds"))
                )
                rows.append(row)
                if (name, epsilon) == self.shown:
                    example = result
        return rows, example

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every process asks for the run folder (under DDP the question is collective)
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if trainer.is_global_zero:
            self.report(trainer, pl_module.model, run_dir)

    def report(self, trainer: L.Trainer, model: torch.nn.Module, run_dir: Path) -> None:
        """Attack, then write and log the tables and figures (on one process)."""
        rows, example = self.sweep(trainer, model)
        label = self.label or Path(trainer.default_root_dir).name
        run = {
            "label": label,
            "target": self.target,
            "num_images": self.num_images,
            "iterations": self.iterations,
            "budget": self.budget,
            "rows": rows,
        }
        self.write_tables(run, run_dir)
        title = f"{label}: {self.mode}"
        figures = [plot_attack_sweep(rows, run_dir / "robustness_sweep.png", title=title)]
        if self.examples:
            name, epsilon = self.shown
            figures.append(
                plot_attack_examples(
                    example,
                    trainer.datamodule.class_names,
                    self.examples,
                    run_dir / "robustness_examples.png",
                    title=f"{title}, {name} ε={epsilon:g}/255 per step",
                )
            )
        for logger in trainer.loggers:
            logger.log_metrics(self.metrics(rows), step=trainer.global_step)
            if isinstance(logger, WandbLogger):
                for figure in figures:  # one key each: W&B wants one size per key
                    logger.log_image(key=f"robustness/{figure.stem}", images=[str(figure)])
                logger.log_table(
                    key="robustness", columns=list(rows[0]), data=[list(r.values()) for r in rows]
                )

    def metrics(self, rows: list[dict]) -> dict[str, float]:
        """What is logged: ``robust/<attack>/eps<ε>/<metric>`` (targeted: ``robust_<target>``)."""
        prefix = "robust" if self.target is None else f"robust_{self.target}"
        return {
            f"{prefix}/{row['attack']}/eps{row['epsilon']:g}/{key}": row[key]
            for row in rows
            for key in REPORTED_METRICS
        }

    def write_tables(self, run: dict, run_dir: Path) -> None:
        """``robustness.json``, ``.csv`` and ``.md`` of a sweep into ``run_dir``."""
        rows = run["rows"]
        write_text_atomic(run_dir / "robustness.json", json.dumps(run, indent=1))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(run_dir / "robustness.csv", text.getvalue())
        lines = [
            f"{run['label']}, {self.mode}, {run['num_images']} test images; ε per step in 1/255.",
            "",
            "| attack | ε (/255) | success rate | mean iters | conf. drop | robust acc |",
            "|---|---:|---:|---:|---:|---:|",
        ] + [
            f"| {r['attack']} | {r['epsilon']:g} | {r['success_rate']:.4f} | "
            f"{r['mean_iterations']:.2f} | {r['confidence_drop']:.4f} | "
            f"{r['robust_accuracy']:.4f} |"
            for r in rows
        ]
        write_text_atomic(run_dir / "robustness.md", "\n".join(lines) + "\n")
        rank_zero_info(f"robustness tables and figures in {run_dir}:\n" + "\n".join(lines))
