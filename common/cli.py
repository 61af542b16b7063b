"""LightningCLI glue shared by the labs: ``python -m labN fit|validate|test|predict|sweep``."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

import common.callbacks  # noqa: F401  (registers short names: --trainer.callbacks+=CAMExport)
from common.data.sources import DatasetNotFoundError
from common.models.pretrained import CheckpointMismatchError

log = logging.getLogger(__name__)

CHECKPOINT_ALIASES = ("best", "last")


def default_loggers(run_dir: str) -> list[Logger]:
    """CSV (numbers readable without W&B) and W&B (offline unless an API key is set)."""
    run = Path(run_dir)
    return [
        CSVLogger(save_dir=run, name="", version=None),
        WandbLogger(save_dir=run, project="dla-labs", name=run.name, group=run.parent.name),
    ]


class LabCLI(LightningCLI):
    """LightningCLI with the project's conventions.

    - every run lives in ``trainer.default_root_dir`` (the *run folder*): checkpoints in
      ``<run>/checkpoints`` (``best.ckpt`` by ``val/acc`` and ``last.ckpt``), CSV metrics and
      figures in ``<run>/version_N``, W&B files in ``<run>/wandb``;
    - ``--ckpt_path best|last`` works in a new process: it names the files in that folder, so
      ``test --ckpt_path best`` after ``fit``, and ``fit --ckpt_path last`` after an interrupted
      fit (resume), do what they say;
    - the DataModule's class count and normalisation statistics are passed to the model
      (``link_data_to_model``; a lab whose models are not classifiers turns it off in a
      subclass, its package's ``CLI``);
    - checkpoints are loaded with ``weights_only=True``.
    """

    link_data_to_model = True

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("trainer_defaults", {"default_root_dir": "runs/default"})
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # best.ckpt by the monitored metric, last.ckpt after every epoch (for resuming)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "checkpoint.filename": "best",
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.enable_version_counter": False,
                "last_checkpoint.filename": "last",
                "last_checkpoint.enable_version_counter": False,
            }
        )
        for key in ("checkpoint", "last_checkpoint"):
            parser.link_arguments(
                "trainer.default_root_dir",
                f"{key}.dirpath",
                compute_fn=lambda run_dir: str(Path(run_dir) / "checkpoints"),
            )
        if self.link_data_to_model:
            parser.link_arguments(
                "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
            )
            parser.link_arguments(
                "data.normalization", "model.init_args.normalization", apply_on="instantiate"
            )

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as error:
            # jsonargparse wraps a constructor's own message in pages of Namespace dumps
            while error.__cause__ is not None:
                error = error.__cause__
            raise SystemExit(f"error: invalid configuration: {error}") from None

    def instantiate_trainer(self, **kwargs):
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(trainer_config["default_root_dir"])
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        # Runs after parsing, before anything is built: resolve aliases, then fail early.
        subcommand = self.config.get("subcommand")
        if subcommand:
            config = self.config[subcommand]
            if config.get("ckpt_path") in CHECKPOINT_ALIASES:
                dirpath = Path(config["checkpoint"]["dirpath"])
                config["ckpt_path"] = _resolve_checkpoint(dirpath, config["ckpt_path"], subcommand)
            if config.get("ckpt_path"):
                _check_checkpoint(config["ckpt_path"])
        super()._parse_ckpt_path()

    def _run_subcommand(self, subcommand: str) -> None:
        config = self.config_init[subcommand]
        if "weights_only" in config and config["weights_only"] is None:
            config["weights_only"] = True
        super()._run_subcommand(subcommand)


def _resolve_checkpoint(dirpath: Path, alias: str, subcommand: str) -> str | None:
    """``best``/``last`` → the file in the run's checkpoint folder (works in a new process)."""
    path = dirpath / f"{alias}.ckpt"
    if path.is_file():
        return str(path)
    if subcommand == "fit" and alias == "last":
        log.warning("no %s to resume from: starting a new run", path)
        return None
    raise SystemExit(
        f"error: --ckpt_path {alias}: {path} does not exist; run `fit` with this config first "
        "(or pass a checkpoint file)"
    )


def _check_checkpoint(path: str) -> None:
    """Fail in one line on a missing or corrupt checkpoint, before any work starts."""
    if not Path(path).is_file():
        raise SystemExit(f"error: checkpoint {path} does not exist")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a damaged file
        raise SystemExit(
            f"error: checkpoint {path} cannot be read ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); it is damaged or not a Lightning checkpoint"
        ) from None


def main(package: str, args: list[str] | None = None) -> None:
    """Entry point of ``python -m <package>``: LightningCLI subcommands (through the package's
    ``CLI`` class, default :class:`LabCLI`), ``sweep`` and the lab's own commands
    (``<package>.COMMANDS``: name → module whose ``main(argv)`` runs it, imported only when
    used)."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")
    torch.set_float32_matmul_precision("high")
    argv = sys.argv[1:] if args is None else args
    lab = importlib.import_module(package)
    commands = {"sweep": "common.sweep", **getattr(lab, "COMMANDS", {})}
    try:
        if argv[:1] and argv[0] in commands:
            module = importlib.import_module(commands[argv[0]])
            if argv[0] == "sweep":
                module.run_sweep(package, argv[1:])
            else:
                module.main(argv[1:])
            return
        # args None: LightningCLI reads sys.argv itself (and does not warn)
        getattr(lab, "CLI", LabCLI)(args=args)
    except (DatasetNotFoundError, CheckpointMismatchError, FileNotFoundError) as error:
        # what a user fixes (a path, a download, a checkpoint): one line, no traceback
        raise SystemExit(f"error: {error}") from None
