"""What every lab command shares besides Lightning's ``fit|validate|test|predict``.

A lab lists its commands in ``<lab>.COMMANDS`` (name → :class:`Command`); ``python -m <lab>
--help`` prints them, ``python -m <lab> <name> --config ...`` runs them. A command is either an
*alias* of a LightningCLI subcommand (an attack sweep is a ``test`` run whose config holds the
robustness callback) or a module whose ``main(argv)`` parses its own options with
:func:`command_parser`, so every command accepts ``--config`` (repeatable) and
``--print_config``, and answers bad input in one line.

This module imports no Lightning at import time: a lab's ``__init__`` imports it to declare its
commands.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import nn


@dataclass(frozen=True)
class Command:
    """One entry of ``python -m <lab> --help``.

    Args:
        help: the one-line description shown in ``--help``.
        module: a module with ``main(argv: list[str])`` that runs the command, or
        alias: the LightningCLI subcommand this name runs (e.g. ``"test"``).
    """

    help: str
    module: str | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if (self.module is None) == (self.alias is None):
            raise ValueError("a Command has either a module or an alias")


def command_parser(prog: str, description: str | None = None) -> ArgumentParser:
    """A jsonargparse parser with ``--config`` (repeatable: later files override earlier ones)
    and ``--print_config``; a parse error raises ``ArgumentError``, which
    :func:`common.cli.main` prints as one line."""
    parser = ArgumentParser(
        prog=prog, description=description, exit_on_error=False, allow_abbrev=False
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    return parser


def writable_folder(folder: str | Path, option: str) -> Path:
    """``folder``, created if needed; one clear error if it cannot be written (e.g. a read-only
    disk or a file of that name), naming the ``option`` that chooses another one."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SystemExit(
            f"error: cannot write to {path} ({reason}); choose another folder with {option}"
        ) from None
    return path


def default_file_mode() -> int:
    """The mode ``open`` gives a new file, ``0o666`` less the process's umask: a temporary file
    is created ``0o600`` (private), which a file the project keeps must not inherit."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def replace_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Make ``path`` with ``write(file)`` through a temporary file in the same folder, so a
    failure half-way leaves the old file (if any) untouched and no temporary file behind; the
    new file gets the usual permissions (:func:`default_file_mode`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with open(descriptor, "wb") as file:
            write(file)
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`replace_atomic`)."""
    return replace_atomic(path, lambda file: file.write(text.encode()))


def copy_atomic(source: str | Path, destination: str | Path) -> Path:
    """Copy a file atomically (:func:`replace_atomic`)."""
    with open(source, "rb") as original:
        return replace_atomic(destination, partial(shutil.copyfileobj, original))


@dataclass
class CommandRun:
    """What :func:`start_run` prepares for a command: the network (eval mode, weights loaded,
    on ``device``), its data (prepared, or ``None``), the run folder and the loggers."""

    model: nn.Module
    data: Any
    device: torch.device
    run_dir: Path | None  #: None for a command that writes nothing
    loggers: list

    def log_metrics(self, metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics)

    def log_figures(self, key: str, paths: list[Path]) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[str(p) for p in paths])

    def finish(self) -> None:
        for logger in self.loggers:
            logger.finalize("success")


def add_model_arguments(
    parser: ArgumentParser, run_dir: str | None, data_type: type | None
) -> None:
    """The preamble every command that runs a network shares: ``--model`` (class_path +
    init_args), ``--checkpoint`` (a ``fit`` checkpoint of it), ``--data`` (of ``data_type``,
    when the command reads a DataModule), ``--device``, ``--seed_everything``, and, unless
    ``run_dir`` is ``None`` (a command that writes nothing, e.g. an app), ``--run_dir`` (where
    every output goes) and ``--logger`` (CSV + W&B in the run folder)."""
    parser.add_argument("--seed_everything", type=int, default=0)
    parser.add_argument("--model", type=nn.Module, required=True, sub_configs=True, help="network")
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a fit checkpoint")
    if data_type is not None:
        parser.add_argument("--data", type=data_type, required=True, sub_configs=True)
    parser.add_argument("--device", type=str | None, default=None, help="default: cuda if any")
    if run_dir is not None:
        parser.add_argument("--run_dir", type=str, default=run_dir, help="where outputs go")
        parser.add_argument("--logger", type=bool, default=True, help="CSV + W&B (offline)")


def start_run(cfg) -> CommandRun:
    """Build what :func:`add_model_arguments` describes, in that order, failing early (in one
    line) on a folder that cannot be written or a checkpoint that does not fit."""
    from lightning import seed_everything

    from common.checkpoints import load_classifier_checkpoint
    from common.cli import default_loggers
    from common.models import find_normalize

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed_everything(cfg.seed_everything, verbose=False)
    run_dir = writable_folder(cfg.run_dir, "--run_dir") if "run_dir" in cfg else None
    model, data = cfg.model.eval(), cfg.get("data")
    if cfg.checkpoint:
        load_classifier_checkpoint(model, cfg.checkpoint)
    if data is not None:
        normalize = find_normalize(model)
        if not normalize.is_set:  # as ImageClassifier does: the data's statistics
            normalize.set_statistics(*data.normalization)
        data.prepare_data()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loggers = default_loggers(str(run_dir)) if run_dir and cfg.logger else []
    return CommandRun(model.to(device), data, device, run_dir, loggers)
