"""``RobustnessEvaluation``: an attack sweep over the test images at the end of ``test``.

The one mechanism behind every attack table of Lab 4: ``python -m lab4 test --config
configs/lab4/attacks/fgsm_sweep.yaml`` (the ε sweep of one model, untargeted or targeted), the
robustness rows of the classifiers' own test runs (``configs/lab4/cnn_cifar10.yaml``, the
adversarially-trained ones) and the field's standard evaluation (FGSM, PGD-20 and APGD-CE in
the L∞ balls of radius 2/255 and 8/255, ``configs/lab4/blocks/attack_strong.yaml``) are this
callback with other settings.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

from common.commands import write_text_atomic
from common.data.datamodule import ImageDataModule
from lab4.attacks import (
    ATTACKS,
    REPORTED_METRICS,
    Attack,
    AttackName,
    AttackResult,
    Epsilon255,
    attack_metrics,
)
from lab4.plots import plot_attack_examples, plot_attack_sweep


def round_robin(classes: torch.Tensor) -> torch.Tensor:
    """Positions of ``classes`` taken round-robin over the classes, each class in its own order:
    every class's first, then every class's second, … (a class that runs out drops out)."""
    classes = classes.cpu()
    by_class = classes.argsort(stable=True)
    first = torch.searchsorted(classes[by_class], classes[by_class])
    rank = torch.empty_like(by_class)
    rank[by_class] = torch.arange(len(classes)) - first  # each one's turn within its class
    return (rank * (int(classes.max()) + 1) + classes).argsort()


def attack_sample(data: ImageDataModule, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_images`` test images (uint8) and labels, a seeded, class-balanced choice made by
    identity, whatever order the DataModule serves the test split in, so every model and run
    attacks the same images in the same order (sorted by source-file position).

    The source positions are shuffled (``randperm(len, seed)``) and taken round-robin over the
    classes: each class's first image in that order, then each class's second, … — the same
    count per class (the lowest classes get one more when ``num_images`` does not divide; a
    class that runs out leaves its turns to the others)."""
    dataset = data.splits["test"]
    by_position = dataset.ids.argsort()
    ids, labels = dataset.ids[by_position], dataset.targets[by_position]
    shuffled = torch.randperm(len(ids), generator=torch.Generator().manual_seed(data.seed))
    chosen = shuffled[round_robin(labels[shuffled])[:num_images]]
    return dataset.by_ids(ids[chosen].sort().values)


def example_rows(result: AttackResult, count: int) -> list[int]:
    """The images of the example figure: round-robin over the true classes, each class's
    real successes first (images the model got right before the attack), then the images it got
    right, then the others."""
    right_before = result.prediction_before == result.labels
    preference = 2 * (result.success & right_before).long() + right_before.long()
    candidates = preference.argsort(descending=True, stable=True).cpu()
    return candidates[round_robin(result.labels[candidates])[:count]].tolist()


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

    Two meanings of ε (``budget_mode``): ``"step"``, the size of each signed-gradient step
    (the lab's sweeps; ``budget`` optionally bounds the total), or ``"ball"``, the radius of
    the L∞ ball the attack must stay in, as robustness is reported in the field (RobustBench:
    8/255 on CIFAR-10), each attack with its own step rule
    (:meth:`lab4.attacks.Attack.in_ball`): FGSM one step of ε, iterative and PGD steps of ε/4
    (PGD-20 unless ``iterations`` is set), APGD-CE its own schedule (100 iterations).

    Writes into the run folder (``trainer.log_dir``): ``<stem>.json`` (label, target,
    settings, rows with the seconds each attack took), ``<stem>.csv``, ``<stem>.md``,
    ``<stem>_sweep.png`` (metrics vs ε) and ``<stem>_examples.png`` (original | amplified
    perturbation | adversarial, for the middle ε of the last attack, round-robin over the
    classes). Logs through the Trainer's loggers: metrics ``robust/<attack>/eps<ε>/<metric>``
    (ball mode: ``linf<ε>``; targeted: ``robust_<target>``), and on W&B the figures and the
    table.

    Args:
        epsilons: ε in 1/255 pixel units, in (0, 255]: per step, or the ball's radius
            (``budget_mode``).
        attacks: names from :data:`lab4.attacks.ATTACKS`.
        iterations: at most this many steps of the iterative attacks (APGD-CE: iterations);
            ``None``: each attack's own number (ball mode: PGD 20, APGD-CE 100).
        budget: total L∞ budget in steps (``budget·ε``); ``None``: none (PGD: its default;
            APGD-CE: the ball of radius ε). Only in step mode.
        budget_mode: ``"step"`` or ``"ball"`` (see above).
        restarts: runs per image of the attacks with a random start (PGD, APGD-CE), each on
            the images not broken yet; an image counts as broken if any run breaks it.
        target: a class name of the DataModule: a targeted sweep (success = predicted as it;
            images of that class are left out of the success rate); ``None``: untargeted.
        num_images: this many test images (:func:`attack_sample`, class-balanced).
        examples: rows of the example figure (0: none), round-robin over the classes (10: one
            per CIFAR-10 class).
        label: the model's name in titles and ``<stem>.json`` (default: the run folder's
            name, ``trainer.default_root_dir``).
        stem: the name of the files (two evaluations in one run need two stems).
    """

    def __init__(
        self,
        epsilons: Sequence[Epsilon255] = (1, 2, 4),
        attacks: Sequence[AttackName] = ("fgsm", "iterative"),
        iterations: PositiveInt | None = 10,
        budget: Epsilon255 | None = None,
        budget_mode: Literal["step", "ball"] = "step",
        restarts: PositiveInt = 1,
        target: str | None = None,
        num_images: PositiveInt = 1000,
        examples: NonNegativeInt = 10,
        label: str | None = None,
        stem: str = "robustness",
    ) -> None:
        if not epsilons or not attacks:
            raise ValueError("RobustnessEvaluation needs at least one epsilon and one attack")
        if budget_mode == "ball" and budget is not None:
            raise ValueError(
                "with budget_mode 'ball' the epsilons are the radii: budget must be null"
            )
        self.epsilons, self.attacks = list(epsilons), list(attacks)
        self.iterations, self.budget, self.target = iterations, budget, target
        self.budget_mode, self.restarts, self.stem = budget_mode, restarts, stem
        self.num_images, self.examples, self.label = num_images, examples, label

    @property
    def shown(self) -> tuple[str, float]:
        """The (attack, ε) of the example figure: the last attack at the middle ε."""
        return self.attacks[-1], self.epsilons[len(self.epsilons) // 2]

    @property
    def mode(self) -> str:
        return "untargeted" if self.target is None else f"targeted → {self.target}"

    @property
    def epsilon_meaning(self) -> str:
        return "per step" if self.budget_mode == "step" else "L∞ ball radius"

    def make_attack(self, name: str, epsilon: float, model: torch.nn.Module, seed: int) -> Attack:
        """The attack ``name`` at ε = ``epsilon``/255 (a step or the ball's radius)."""
        options = {"restarts": self.restarts, "generator": torch.Generator().manual_seed(seed)}
        if self.iterations is not None:
            options["steps"] = self.iterations
        if self.budget_mode == "ball":
            return ATTACKS[name].in_ball(model, epsilon / 255, **options)
        step = epsilon / 255
        budget = None if self.budget is None else self.budget * step
        return ATTACKS[name](model, step, budget=budget, **options)

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
                attack = self.make_attack(name, epsilon, model, data.seed)
                result = attack_test_images(attack, data, self.num_images, target, device)
                # plain ints (not jsonargparse's PositiveInt): a W&B table wants one type a column
                row = {"attack": name, "epsilon": epsilon, "steps": int(attack.max_steps)}
                row |= {"restarts": int(attack.runs), **attack_metrics(result)}
                row["seconds"] = time.perf_counter() - start
                rank_zero_info(
                    f"{name} ε={epsilon:g}/255 {self.epsilon_meaning}: "
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
            "budget_mode": self.budget_mode,
            "restarts": self.restarts,
            "rows": rows,
        }
        self.write_tables(run, run_dir)
        title = f"{label}: {self.mode}"
        figures = [
            plot_attack_sweep(
                rows,
                run_dir / f"{self.stem}_sweep.png",
                title=title,
                xlabel=f"ε {self.epsilon_meaning} (/255)",
            )
        ]
        if self.examples:
            name, epsilon = self.shown
            figures.append(
                plot_attack_examples(
                    example,
                    trainer.datamodule.class_names,
                    example_rows(example, self.examples),
                    run_dir / f"{self.stem}_examples.png",
                    title=f"{title}, {name} ε={epsilon:g}/255 {self.epsilon_meaning}",
                )
            )
        for logger in trainer.loggers:
            logger.log_metrics(self.metrics(rows), step=trainer.global_step)
            if isinstance(logger, WandbLogger):
                for figure in figures:  # one key each: W&B wants one size per key
                    logger.log_image(key=f"{self.stem}/{figure.stem}", images=[str(figure)])
                logger.log_table(
                    key=self.stem, columns=list(rows[0]), data=[list(r.values()) for r in rows]
                )

    def metrics(self, rows: list[dict]) -> dict[str, float]:
        """What is logged: ``robust/<attack>/eps<ε>/<metric>`` (ball mode: ``linf<ε>``;
        targeted: ``robust_<target>``)."""
        prefix = "robust" if self.target is None else f"robust_{self.target}"
        meaning = "eps" if self.budget_mode == "step" else "linf"
        return {
            f"{prefix}/{row['attack']}/{meaning}{row['epsilon']:g}/{key}": row[key]
            for row in rows
            for key in REPORTED_METRICS
        }

    def write_tables(self, run: dict, run_dir: Path) -> None:
        """``<stem>.json``, ``.csv`` and ``.md`` of a sweep into ``run_dir``."""
        rows = run["rows"]
        write_text_atomic(run_dir / f"{self.stem}.json", json.dumps(run, indent=1))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(run_dir / f"{self.stem}.csv", text.getvalue())
        lines = [
            f"{run['label']}, {self.mode}, {run['num_images']} test images (class-balanced); "
            f"ε {self.epsilon_meaning} in 1/255; steps per run × runs per image (restarts).",
            "",
            "| attack | ε (/255) | steps × runs | success rate | mean iters | conf. drop "
            "| robust acc |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ] + [
            f"| {r['attack']} | {r['epsilon']:g} | {r['steps']} × {r['restarts']} | "
            f"{r['success_rate']:.4f} | {r['mean_iterations']:.2f} | "
            f"{r['confidence_drop']:.4f} | {r['robust_accuracy']:.4f} |"
            for r in rows
        ]
        write_text_atomic(run_dir / f"{self.stem}.md", "\n".join(lines) + "\n")
        rank_zero_info(f"robustness tables and figures in {run_dir}:\n" + "\n".join(lines))
