"""``OODEvaluation``: OOD metrics of several detectors, ID test set vs every OOD set, in ``test``.

The detectors follow :class:`common.ood.Detector` and come from the config (e.g.
``lab4.detectors``), so this module depends on no lab. Nothing is computed twice: the ID test set
is scored *during* the Trainer's test loop — a forward hook on the network's last layer
(``classifier[-1]``) keeps its input (penultimate features) and output (logits) from the test
step's own forward pass, and ``on_test_batch_end`` scores that batch — then the OOD sets are
scored at the epoch's end.

The DataModule provides (e.g. ``lab4.data.OODDataModule``): ``ood_sets`` (names),
``ood_dataset(name, split)`` and ``validation_images(ood_set, size)`` (uint8 images),
``splits["train"]``, and ``preprocessed_batches(images, device)``, the one uint8 → model input
conversion, so OOD images are prepared exactly like the ID ones.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from tqdm import tqdm

from common.features import HeadCapture, features_and_logits
from common.metrics import (
    OOD_METRIC_LEGEND,
    OOD_METRIC_TITLES,
    OOD_METRICS,
    OODCurves,
    ood_metrics_and_curves,
)
from common.ood import Detector, Progress, ScoredBatch, Tuned, fit_detectors, tune_detectors
from common.plots import plot_curves, plot_heatmap, plot_ood_scores


class OODEvaluation(L.Callback):
    """OOD metrics, tables and figures for the configured detectors in ``test`` (and,
    optionally, metrics on validation splits during training).

    Before the test loop, detectors that need it are fitted on ID training features and tuned on
    validation images; during it, the ID test batches are scored; at its end, every OOD set.
    Writes into the run folder ``ood_metrics.csv`` (one row per OOD set × detector),
    ``ood_summary.csv`` (one row per group × detector: the means over the group's sets, as
    OpenOOD v1.5 reports near- and far-OOD), ``ood_metrics.md`` (both tables, a one-line summary
    per detector and the metrics' legend), ``ood_<detector>.png`` (score histograms, ROC and PR
    curves per OOD set) and, per tuned detector, ``ood_tuning_<detector>.json`` and ``.png``
    (validation AUROC over its grid: a heat-map for two hyperparameters, a line for one); logs
    ``ood/<set or group>/<detector>/<metric>``, ``ood_tuning/<detector>/...``, and the figures
    to W&B. Under DDP every process scores its shard of the ID test set and the scores are
    gathered (the sampler's padding may repeat up to one image per process); the OOD sets are
    scored by rank 0.

    Args:
        detectors: :class:`common.ood.Detector` objects (``class_path`` entries in YAML).
        groups: group name → OOD sets, e.g. ``{near: [imagenette, cifar100], far: [mnist,
            fake]}``; sets the data does not have are left out of the means, empty groups
            dropped. ``None``: no group means.
        fit_images: ID training images whose features fit detectors that need it (seeded choice).
        tune_on: the OOD set whose validation split tunes detectors that need it.
        tune_images: at most this many ID and this many OOD validation images for tuning.
        split: which OOD split to score at test end (``"val"`` is for choosing hyperparameters).
        every_n_val_epochs: also evaluate (ID val vs the OOD ``val`` splits, logged as
            ``ood_val/...``, no files) every this many training epochs; ``None``: test only.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        groups: dict[str, list[str]] | None = None,
        fit_images: PositiveInt = 10_000,
        tune_on: str = "imagenette",
        tune_images: PositiveInt | None = 1000,
        split: Literal["val", "test"] = "test",
        every_n_val_epochs: PositiveInt | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.groups = dict(groups or {})
        self.fit_images = fit_images
        self.tune_on = tune_on
        self.tune_images = tune_images
        self.split = split
        self.every_n_val_epochs = every_n_val_epochs
        self.seconds: dict[str, float] = defaultdict(float)  #: per detector, last evaluation
        self.tuned: list[Tuned] = []  #: last evaluation's tunings
        self._capture: HeadCapture | None = None  # set while an evaluation runs
        self._id_scores: dict[str, list[torch.Tensor]] = {}
        self._id_correct = self._id_count = 0

    # --- Lightning hooks -----------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # fail before any work on a misspelt OOD set name (where this stage evaluates)
        if not any(d.needs_tuning for d in self.detectors) or (
            stage != "test" and not self.every_n_val_epochs
        ):
            return
        ood_sets = list(trainer.datamodule.ood_sets)
        if self.tune_on not in ood_sets:
            raise ValueError(
                f"OODEvaluation: tune_on={self.tune_on!r} is not an OOD set of the data; "
                f"choose among {ood_sets}"
            )

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self._capture is not None:  # an evaluation runs (always in test)
            self._capture.arm()

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._capture is not None:
            self._score_id_batch(pl_module, batch)

    on_validation_batch_start = on_test_batch_start
    on_validation_batch_end = on_test_batch_end

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        id_scores, id_accuracy = self._gather_id(trainer, pl_module)
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # on every process: collective
        if trainer.is_global_zero:
            self._report(trainer, pl_module, id_scores, id_accuracy, run_dir)
        self._stop()

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        return (
            bool(self.every_n_val_epochs)
            and not trainer.sanity_checking
            and (epoch % self.every_n_val_epochs == 0)
        )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._due(trainer):
            self._start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """ID val vs the OOD ``val`` splits, logged only: the test sets stay untouched."""
        if self._capture is None:
            return
        id_scores, id_accuracy = self._gather_id(trainer, pl_module)
        if trainer.is_global_zero:
            ood_scores = self._score_ood_sets(trainer, pl_module, "val")
            rows, _ = self._metrics(id_scores, ood_scores, id_accuracy)
            self._log(trainer, self._row_metrics(rows, "ood_val"))
        self._stop()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop()  # also after an exception in the loop: no hook stays on the network

    # --- one evaluation ------------------------------------------------------------------
    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fit and tune the detectors that need it, then arm the test (or val) loop's capture."""
        self.seconds = defaultdict(float)
        self._capture = HeadCapture(pl_module.model)
        self._fit(trainer, pl_module)
        self._tune(trainer, pl_module)
        names = [d.name for d in self.detectors]
        if len(set(names)) < len(names):
            raise ValueError(f"OODEvaluation: two detectors share a name among {names}")
        self._id_scores = {name: [] for name in names}
        self._id_correct = self._id_count = 0

    def _stop(self) -> None:
        if self._capture is not None:
            self._capture.remove()
            self._capture = None
        self._id_scores = {}

    @staticmethod
    def _progress_of(trainer: L.Trainer) -> Progress:
        """Wraps batches in a progress bar where the Trainer shows one (rank 0)."""

        def progress(batches: Iterable, description: str, images: int) -> Iterable:
            return tqdm(
                batches,
                desc=f"OOD evaluation: {description}",
                total=math.ceil(images / trainer.datamodule.batch_size),
                leave=False,
                disable=trainer.progress_bar_callback is None or not trainer.is_global_zero,
            )

        return progress

    def _forward(
        self, pl_module: L.LightningModule, batches: Iterable[torch.Tensor]
    ) -> Iterator[ScoredBatch]:
        """Each batch with the features and logits of one forward pass, as the test step runs
        it (``pl_module(images)``)."""
        for images, features, logits in features_and_logits(pl_module.model, batches, pl_module):
            yield ScoredBatch(pl_module.model, images, features, logits)

    def _fit(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        start = time.perf_counter()
        fitted = fit_detectors(
            self.detectors,
            pl_module.model,
            trainer.datamodule,
            self.fit_images,
            pl_module.device,
            forward=pl_module,
            progress=self._progress_of(trainer),
        )
        if fitted:
            names = ", ".join(type(d).__name__ for d in fitted)
            images = min(self.fit_images, len(trainer.datamodule.splits["train"]))
            rank_zero_info(
                f"OOD evaluation: fitted {names} on the penultimate features of {images} ID "
                f"training images in {time.perf_counter() - start:.1f} s"
            )

    def _tune(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.tuned = tune_detectors(
            self.detectors,
            pl_module.model,
            trainer.datamodule,
            self.tune_on,
            self.tune_images,
            pl_module.device,
            progress=self._progress_of(trainer),
        )
        for tuned in self.tuned:
            rank_zero_info(
                f"OOD evaluation: tuned {type(tuned.detector).__name__} on ID val vs "
                f"{self.tune_on} val ({tuned.images[0]} + {tuned.images[1]} images): chose "
                f"{tuned.detector.name} (validation AUROC {tuned.result.auroc.max():.4f}) in "
                f"{tuned.seconds:.1f} s"
            )

    def _score(self, batch: ScoredBatch, scores: dict[str, list[torch.Tensor]]) -> None:
        for detector in self.detectors:
            start = time.perf_counter()
            scores[detector.name].append(detector.score(batch).float().cpu())
            self.seconds[detector.name] += time.perf_counter() - start

    def _score_id_batch(self, pl_module: L.LightningModule, batch) -> None:
        images, targets = batch
        features, logits = self._capture.take()
        self._score(ScoredBatch(pl_module.model, images, features, logits), self._id_scores)
        self._id_correct += (logits.argmax(dim=1) == targets).sum().item()
        self._id_count += len(targets)

    def _gather_id(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> tuple[dict[str, torch.Tensor], float]:
        """The ID scores of every process, and the ID accuracy."""
        scores = {name: torch.cat(parts) for name, parts in self._id_scores.items()}
        counts = torch.tensor([self._id_correct, self._id_count])
        if trainer.world_size > 1:
            gathered = pl_module.all_gather({"scores": scores, "counts": counts})
            scores = {name: s.flatten(0, 1).cpu() for name, s in gathered["scores"].items()}
            counts = gathered["counts"].sum(dim=0).cpu()
        return scores, counts[0].item() / counts[1].item()

    def _score_ood_sets(
        self, trainer: L.Trainer, pl_module: L.LightningModule, split: str
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Every detector's scores on every OOD set's ``split``: ``[set][detector]``. Where the
        Trainer runs only part of the ID loop (``limit_test_batches``, ``limit_val_batches``,
        ``fast_dev_run``), each OOD set is cut to the same share (a seeded choice), so the ratio
        of ID to OOD images, on which AUPR depends, stays that of the whole sets."""
        data = trainer.datamodule
        share = self._share_of_id_batches(trainer)
        result = {}
        for name in data.ood_sets:
            start = time.perf_counter()
            images = data.ood_dataset(name, split).images
            size = len(images)
            if share < 1:
                keep = torch.randperm(size, generator=torch.Generator().manual_seed(0))
                images = images[keep[: math.ceil(share * size)].sort().values]
            batches = data.preprocessed_batches(images, pl_module.device)
            batches = self._progress_of(trainer)(batches, f"scoring {name} {split}", len(images))
            scores: dict[str, list[torch.Tensor]] = {d.name: [] for d in self.detectors}
            for batch in self._forward(pl_module, batches):
                self._score(batch, scores)
            result[name] = {detector: torch.cat(parts) for detector, parts in scores.items()}
            cut = f" of {size}: the share of the ID batches the Trainer ran" if share < 1 else ""
            rank_zero_info(
                f"OOD evaluation: scored {name} {split} ({len(images)} images{cut}) "
                f"in {time.perf_counter() - start:.1f} s"
            )
        return result

    @staticmethod
    def _share_of_id_batches(trainer: L.Trainer) -> float:
        """The share of the ID test (or validation) loader's batches that the Trainer runs: 1
        unless ``limit_*_batches`` or ``fast_dev_run`` cut the loop short."""
        if trainer.testing:
            run, loaders = trainer.num_test_batches, trainer.test_dataloaders
        else:
            run, loaders = trainer.num_val_batches, trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
        try:
            total = len(loader)
        except TypeError:  # an iterable without a length: the loop runs it to its end
            return 1.0
        return min(1.0, run[0] / total) if total else 1.0

    def _metrics(
        self,
        id_scores: dict[str, torch.Tensor],
        ood_scores: dict[str, dict[str, torch.Tensor]],
        id_accuracy: float,
    ) -> tuple[list[dict], dict[str, dict[str, OODCurves]]]:
        """Metric rows (OOD set × detector) and the curves behind them, ``[detector][set]``."""
        rows, curves = [], defaultdict(dict)
        group_of = {s: g for g, sets in self.groups.items() for s in sets}
        for ood_set, scores in ood_scores.items():
            for d in self.detectors:
                metrics, curves[d.name][ood_set] = ood_metrics_and_curves(
                    id_scores[d.name], scores[d.name]
                )
                rows.append(
                    {"ood_set": ood_set, "group": group_of.get(ood_set, ""), "detector": d.name,
                     **metrics, "id_accuracy": id_accuracy}
                )  # fmt: skip
        return rows, curves

    def _summary(self, rows: list[dict]) -> list[dict]:
        """Per group × detector, the mean of each metric over the group's OOD sets (OpenOOD v1.5
        reports near- and far-OOD this way)."""
        summary = []
        for group in self.groups:
            for d in self.detectors:
                members = [r for r in rows if r["group"] == group and r["detector"] == d.name]
                if not members:
                    continue
                means = {m: sum(r[m] for r in members) / len(members) for m in OOD_METRICS}
                summary.append(
                    {"group": group, "ood_sets": " ".join(r["ood_set"] for r in members),
                     "detector": d.name, **means, "id_accuracy": members[0]["id_accuracy"]}
                )  # fmt: skip
        return summary

    # --- outputs -------------------------------------------------------------------------
    def _report(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        id_scores: dict[str, torch.Tensor],
        id_accuracy: float,
        run_dir: Path,
    ) -> None:
        rank_zero_info(
            f"OOD evaluation: scored ID test ({len(next(iter(id_scores.values())))} images) "
            "during the test loop"
        )
        ood_scores = self._score_ood_sets(trainer, pl_module, self.split)
        rows, curves = self._metrics(id_scores, ood_scores, id_accuracy)
        summary = self._summary(rows)
        run_dir.mkdir(parents=True, exist_ok=True)
        table = self._write_tables(rows, summary, run_dir)
        figures = [
            plot_ood_scores(
                id_scores[d.name],
                {ood_set: scores[d.name] for ood_set, scores in ood_scores.items()},
                curves[d.name],
                run_dir / f"ood_{d.name}.png",
                title=f"{type(pl_module.model).__name__}: {d.name}",
            )
            for d in self.detectors
        ]
        tuning_figures = [self._write_tuning(tuned, run_dir) for tuned in self.tuned]
        self._log(
            trainer,
            {
                **self._row_metrics(rows, "ood"),
                **self._row_metrics(summary, "ood", "group"),
                **self._tuning_metrics(),
            },
        )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="ood", images=[str(f) for f in figures])
                if tuning_figures:
                    logger.log_image(key="ood_tuning", images=[str(f) for f in tuning_figures])
        rank_zero_info(
            "OOD evaluation: seconds per detector (ID and OOD sets): "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.seconds.items())
        )
        files = ["ood_metrics.csv", "ood_metrics.md"] + [f.name for f in figures + tuning_figures]
        files += ["ood_summary.csv"] if summary else []
        files += [f"ood_tuning_{t.detector.name}.json" for t in self.tuned]
        rank_zero_info(f"OOD evaluation: wrote {', '.join(sorted(files))} into {run_dir}")
        rank_zero_info(table)

    @staticmethod
    def _row_metrics(rows: list[dict], prefix: str, column: str = "ood_set") -> dict[str, float]:
        return {
            f"{prefix}/{row[column]}/{row['detector']}/{key}": row[key]
            for row in rows
            for key in OOD_METRICS
        }

    @staticmethod
    def _log(trainer: L.Trainer, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def _tuning_metrics(self) -> dict[str, float]:
        """The chosen hyperparameters and their validation AUROC, per tuned detector."""
        metrics = {}
        for tuned in self.tuned:
            prefix = f"ood_tuning/{tuned.detector.name}"
            metrics[f"{prefix}/val_auroc"] = tuned.result.auroc.max().item()
            metrics.update({f"{prefix}/{k}": float(v) for k, v in tuned.result.best.items()})
        return metrics

    def _write_tuning(self, tuned: Tuned, run_dir: Path) -> Path:
        """``ood_tuning_<detector>.json`` and its figure; returns the figure's path."""
        result, name = tuned.result, tuned.detector.name
        record = {
            "detector": name,
            "chosen": result.best,
            "val_auroc": result.auroc.max().item(),
            "grid": result.grid,
            "val_auroc_grid": result.auroc.tolist(),
            "validation": f"ID val vs {self.tune_on} val",
            "images": list(tuned.images),
            "seconds": tuned.seconds,
        }
        (run_dir / f"ood_tuning_{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        path = run_dir / f"ood_tuning_{name}.png"
        title = f"{name}: validation AUROC (ID val vs {self.tune_on} val)"
        axes = list(result.grid.items())
        if result.auroc.dim() == 1:
            (axis, values), = axes  # fmt: skip
            points = list(zip(values, result.auroc.tolist(), strict=True))
            return plot_curves({name: points}, path, axis, "validation AUROC", title)
        (rows, row_values), (columns, column_values) = axes
        return plot_heatmap(
            result.auroc,
            [f"{v:g}" for v in row_values],
            [f"{v:g}" for v in column_values],
            path,
            xlabel=columns,
            ylabel=rows,
            title=title,
        )

    @staticmethod
    def _write_csv(rows: list[dict], path: Path) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def _write_tables(self, rows: list[dict], summary: list[dict], run_dir: Path) -> str:
        """``ood_metrics.csv``, ``ood_summary.csv`` (with groups) and ``ood_metrics.md``;
        returns the markdown."""
        self._write_csv(rows, run_dir / "ood_metrics.csv")
        titles = [OOD_METRIC_TITLES[m] for m in OOD_METRICS]
        align = "---:|" * len(OOD_METRICS)
        lines = [f"ID test accuracy: {rows[0]['id_accuracy']:.4f}", ""]
        if summary:
            self._write_csv(summary, run_dir / "ood_summary.csv")
            lines += ["Mean over each group's OOD sets:", ""] + self.summary_lines(summary) + [""]
            lines += ["| group | detector | " + " | ".join(titles) + " |", "|---|---|" + align]
            lines += [
                f"| {r['group']} | {r['detector']} | "
                + " | ".join(f"{r[m]:.4f}" for m in OOD_METRICS) + " |"
                for r in summary
            ]  # fmt: skip
            lines.append("")
        lines += ["| OOD set | group | detector | " + " | ".join(titles) + " |",
                  "|---|---|---|" + align]  # fmt: skip
        lines += [
            f"| {r['ood_set']} | {r['group']} | {r['detector']} | "
            + " | ".join(f"{r[m]:.4f}" for m in OOD_METRICS) + " |"
            for r in rows
        ]  # fmt: skip
        lines += ["", OOD_METRIC_LEGEND]
        table = "\n".join(lines) + "\n"
        (run_dir / "ood_metrics.md").write_text(table)
        return table

    @staticmethod
    def summary_lines(summary: list[dict]) -> list[str]:
        """One line per detector: AUROC and both FPR@95 per group, and the ID accuracy."""
        by_detector: dict[str, list[dict]] = defaultdict(list)
        for row in summary:
            by_detector[row["detector"]].append(row)
        return [
            f"- {detector}: "
            + "; ".join(
                f"{r['group']} AUROC {r['auroc']:.3f}, FPR@95 ID-kept {r['fpr95_id_kept']:.3f} / "
                f"OOD-caught {r['fpr95_ood_caught']:.3f}"
                for r in group_rows
            )
            + f"; ID accuracy {group_rows[0]['id_accuracy']:.4f}"
            for detector, group_rows in by_detector.items()
        ]
