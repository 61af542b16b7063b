"""A sweep's search (``search:`` in a sweep config): the CLI keys it draws, from which ranges,
with which sampler, budget, objective and pruner. :mod:`common.study` runs its trials;
:mod:`common.sweep` is the command and writes its table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import optuna
from jsonargparse.typing import NonNegativeInt, PositiveInt
from optuna.samplers import BaseSampler, RandomSampler, TPESampler


@dataclass
class Param:
    """One searched CLI key: a ``float`` or ``int`` range from ``low`` to ``high``
    (log-uniform with ``log: true``), or ``categorical`` ``choices``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical parameter needs choices")
        if self.type != "categorical" and (self.low is None or self.high is None):
            raise ValueError(f"a {self.type} parameter needs low and high")

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass
class Search:
    """A search sweep (``search:`` in its config): ``trials`` runs in all, shared by every
    worker, each with the arguments ``--<key>=<value>`` drawn from ``space`` by the
    ``sampler``, ranked by the run's ``objective`` (a key of its result: ``best_val_acc``, or
    ``test_acc``, which chooses on test data). TPE draws its first ``startup_trials`` at
    random. Trial ``n`` is drawn with seed ``seed + n``, so parallel workers never draw the same
    point and a one-worker search repeats itself. With ``pruner: median`` each ``fit`` reports
    its ``val/acc`` every epoch and stops once it is below the median of the finished trials'
    at that epoch, after ``pruning_warmup_epochs`` epochs and ``startup_trials`` finished
    trials; ``val/acc`` is maximized, so such a search must be too."""

    space: dict[str, Param]
    trials: PositiveInt
    sampler: Literal["tpe", "random"] = "tpe"
    startup_trials: NonNegativeInt = 10
    objective: str = "best_val_acc"
    direction: Literal["maximize", "minimize"] = "maximize"
    seed: int = 0
    pruner: Literal["median", "none"] = "none"
    pruning_warmup_epochs: NonNegativeInt = 2

    def __post_init__(self) -> None:
        if self.pruner != "none" and self.direction != "maximize":
            raise ValueError("a pruner compares val/acc, which the search must maximize")

    def pruning_args(self) -> list[str]:
        """The ``fit`` arguments that add the pruning callback (none without a pruner)."""
        if self.pruner == "none":
            return []
        return [
            "--trainer.callbacks+=common.callbacks.OptunaPruning",
            f"--trainer.callbacks.warmup_epochs={self.pruning_warmup_epochs}",
            f"--trainer.callbacks.startup_trials={self.startup_trials}",
        ]

    def sampler_for(self, number: int) -> BaseSampler:
        if self.sampler == "random":
            return RandomSampler(seed=self.seed + number)
        # constant liar: a running trial counts as a bad one, so workers spread out
        return TPESampler(
            seed=self.seed + number, n_startup_trials=self.startup_trials, constant_liar=True
        )
