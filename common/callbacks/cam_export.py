"""``CAMExport``: Class Activation Maps of a fixed set of images at the end of validation/test."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from torch.utils.data import default_collate

from common.cam import METHODS, overlay, upsample
from common.metrics import explanation_confidence
from common.plots import plot_cam_grid


class CAMExport(L.Callback):
    """Render image | CAM overlay for ``num_images`` fixed images of the val/test set.

    Each panel is titled with the predicted class and its probability and the true class. The
    grid is saved as ``<run>/version_N/cam_<stage>.png`` (``cam_val_epoch<e>.png`` during fit)
    and logged to W&B, with the maps' Average Drop and Increase in Confidence
    (:func:`common.metrics.explanation_confidence`) as ``cam/<stage>_average_drop`` etc.

    Args:
        num_images: images in the grid, evenly spaced over the dataset (the same every time).
        stages: ``"validation"`` and/or ``"test"``.
        every_n_epochs: during fit, render every n-th validation.
        method: ``"cam"`` (GAP → linear networks) or ``"gradcam"`` (any classifier head).
    """

    def __init__(
        self,
        num_images: int = 8,
        stages: tuple[str, ...] = ("validation", "test"),
        every_n_epochs: int = 1,
        method: Literal["cam", "gradcam"] = "cam",
    ) -> None:
        self.num_images = num_images
        self.stages = stages
        self.every_n_epochs = every_n_epochs
        self.method = method

    def _fixed_batch(self, trainer, pl_module, loaders) -> tuple[torch.Tensor, torch.Tensor]:
        """``num_images`` images spread evenly over the dataset (many classes, same every time)."""
        dataset = (loaders[0] if isinstance(loaders, list | tuple) else loaders).dataset
        index = torch.linspace(0, len(dataset) - 1, self.num_images).long().tolist()
        images, targets = default_collate([dataset[i] for i in index])
        batch = images.to(pl_module.device), targets.to(pl_module.device)
        if trainer.datamodule is not None:  # e.g. uint8 → [0, 1] floats, as for every batch
            batch = trainer.datamodule.on_after_batch_transfer(batch, 0)
        return batch

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if "validation" not in self.stages or trainer.sanity_checking:
            return
        if trainer.current_epoch % self.every_n_epochs == 0:
            suffix = f"_epoch{trainer.current_epoch}" if trainer.state.fn == "fit" else ""
            self._export(trainer, pl_module, trainer.val_dataloaders, f"val{suffix}")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if "test" in self.stages:
            self._export(trainer, pl_module, trainer.test_dataloaders, "test")

    def _export(self, trainer, pl_module, loaders, name: str) -> None:
        # every process asks for the run folder (under DDP the question is collective)
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return
        images, targets = self._fixed_batch(trainer, pl_module, loaders)
        model = pl_module.model
        cams, logits = METHODS[self.method](model, images)
        probabilities, predicted = logits.float().softmax(dim=1).max(dim=1)
        saliency = upsample(cams, images.shape[-2:])
        class_names = getattr(trainer.datamodule, "class_names", None) or [
            str(c) for c in range(logits.shape[1])
        ]
        titles = [
            f"pred {class_names[p]} {q:.2f}\ntrue {class_names[t]}"
            for p, q, t in zip(
                predicted.tolist(), probabilities.tolist(), targets.tolist(), strict=True
            )
        ]
        path = plot_cam_grid(images, overlay(images, saliency), titles, run_dir / f"cam_{name}.png")
        scores = explanation_confidence(model, images, saliency, predicted)
        stage = name.split("_")[0]
        metrics = {f"cam/{stage}_{key}": value for key, value in scores.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"cam/{stage}", images=[str(path)], caption=[name])
