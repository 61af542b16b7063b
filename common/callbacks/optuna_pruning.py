"""``OptunaPruning``: a sweep search's bad trial stops its own ``fit`` early."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import optuna
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from optuna.pruners import MedianPruner

from common.commands import write_text_atomic
from common.study import TRIAL_ENV, open_storage


class OptunaPruning(L.Callback):
    """Reports ``monitor`` to the search trial this fit runs for after each validation, and
    stops the fit once Optuna's :class:`~optuna.pruners.MedianPruner` prunes the trial.

    A sweep runs each trial's ``fit`` in a process of its own (:mod:`common.sweep`), so the trial
    object of optuna-integration's ``PyTorchLightningPruningCallback`` is out of reach: this
    callback finds the trial through the environment the sweep sets (:data:`TRIAL_ENV`: the
    study's URL, its name, the trial's number) and reopens the study the way the sweep opens it.
    The step of a report is the epoch. A pruned fit stops at the end of its epoch, keeping its
    checkpoints (the sweep still tests ``best``), and writes ``pruned.json`` (``epoch``,
    ``value``) in the run folder: the sweep then tells the trial PRUNED. Under DDP, rank 0 talks
    to the study and broadcasts its verdict. The sweep adds this callback to the trials of a
    ``search:`` with ``pruner: median``; it does nothing outside ``fit``.

    Args:
        monitor: the metric reported, logged in validation; higher is better.
        warmup_epochs: the first epochs, never pruned (every run starts low).
        startup_trials: finished trials the pruner waits for before pruning any.
    """

    def __init__(
        self, monitor: str = "val/acc", warmup_epochs: int = 2, startup_trials: int = 10
    ) -> None:
        self.monitor = monitor
        self.pruner = MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
        self.trial: optuna.Trial | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        missing = [name for name in TRIAL_ENV if not os.environ.get(name)]
        if missing:
            raise RuntimeError(
                "OptunaPruning runs inside a sweep search with a pruner: "
                f"{', '.join(missing)} not set (give the sweep's search: `pruner: median`)"
            )
        if trainer.is_global_zero:  # opened once: one connection for the whole fit
            url, name, number = (os.environ[key] for key in TRIAL_ENV)
            storage = open_storage(url)
            study = optuna.load_study(study_name=name, storage=storage, pruner=self.pruner)
            study_id = storage.get_study_id_from_name(name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
            self.trial = optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if self.monitor not in trainer.callback_metrics:  # every rank: none waits for rank 0
            raise RuntimeError(f"OptunaPruning: validation logged no {self.monitor!r}")
        value, epoch = float(trainer.callback_metrics[self.monitor]), trainer.current_epoch
        prune = False
        if self.trial is not None:  # rank 0
            self.trial.report(value, step=epoch)
            prune = self.trial.should_prune()
            if prune:
                folder = Path(trainer.default_root_dir)
                write_text_atomic(
                    folder / "pruned.json", json.dumps({"epoch": epoch, "value": value})
                )
                rank_zero_info(f"pruned after {epoch + 1} epochs: {self.monitor} {value:.4f}")
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
