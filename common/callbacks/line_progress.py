"""A progress bar for logs: whole lines, when the output is a file or a pipe rather than a terminal.

tqdm redraws one line with carriage returns, so a log (``make run > log``, ``nohup``, CI) shows
only its last state, often after many minutes of nothing. :class:`LineProgress` prints one line
per epoch — step, the progress-bar metrics (losses, accuracies, validation results) and the
time since the start — and one more every ``every_seconds`` inside a long epoch, validation,
test or prediction. ``LabTrainer`` uses it by default when stdout is not a terminal.
"""

from __future__ import annotations

import time
from numbers import Number

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.trainer.states import TrainerFn


def format_duration(seconds: float) -> str:
    """``75.2`` → ``1m 15s``; ``3725`` → ``1h 02m 05s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def format_metrics(metrics: dict) -> str:
    """``{"val/acc": 0.91234, ...}`` → ``val/acc 0.9123 · ...`` (numbers to four decimals)."""
    return " · ".join(
        f"{name} {value:.4f}" if isinstance(value, Number) else f"{name} {value}"
        for name, value in metrics.items()
    )


class LineProgress(ProgressBar):
    """Progress as whole lines on stdout (rank 0 only).

    Args:
        every_seconds: a line at least this often inside a long epoch or evaluation; epoch
            lines come in any case.
    """

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.enabled = True
        self.start = self.last_line = time.monotonic()
        self.epoch_to_report: int | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def line(self, text: str) -> None:
        if self.enabled:
            print(f"{text} · {format_duration(time.monotonic() - self.start)}", flush=True)
            self.last_line = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last_line >= self.every_seconds

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.start = self.last_line = time.monotonic()  # once per fit, test, ...

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report_epoch(trainer)  # the previous epoch's metrics are complete by now
        self.epoch_to_report = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report_epoch(trainer)

    def report_epoch(self, trainer: L.Trainer) -> None:
        """The line of the epoch that ended: Lightning logs its last metrics (the module's
        ``on_train_epoch_end``) after the callbacks' hook of that name, so it comes here."""
        if self.epoch_to_report is None:
            return
        metrics = self.get_metrics(trainer, trainer.lightning_module)
        metrics.pop("v_num", None)
        metrics = {k: v for k, v in metrics.items() if not k.endswith("_step")}
        epochs = "" if trainer.max_epochs in (None, -1) else f"/{trainer.max_epochs}"
        shown = format_metrics(metrics)
        self.line(
            f"epoch {self.epoch_to_report + 1}{epochs} · step {trainer.global_step}"
            + (f" · {shown}" if shown else "")
        )
        self.epoch_to_report = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.due():
            metrics = {
                k: v for k, v in self.get_metrics(trainer, pl_module).items() if k.endswith("_step")
            }
            shown = format_metrics(metrics)
            self.line(
                f"epoch {trainer.current_epoch + 1} · batch {batch_idx + 1}/"
                f"{self.total_train_batches} · step {trainer.global_step}"
                + (f" · {shown}" if shown else "")
            )

    def evaluation_batch_end(self, stage: str, totals: list, batch_idx: int, loader: int) -> None:
        if self.due():
            self.line(f"{stage} · batch {batch_idx + 1}/{totals[loader]}")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, loader=0):
        if not trainer.sanity_checking:
            self.evaluation_batch_end("validation", trainer.num_val_batches, batch_idx, loader)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, loader=0):
        self.evaluation_batch_end("test", trainer.num_test_batches, batch_idx, loader)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, loader=0):
        self.evaluation_batch_end("predict", trainer.num_predict_batches, batch_idx, loader)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # in a fit, the epoch line says it
            self.line("validation done")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.line("test done")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.line("predict done")
