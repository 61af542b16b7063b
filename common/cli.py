"""``python -m labN <command> --config ...``: one entry point for every command of every lab.

Lightning's ``fit|validate|test|predict`` run through :class:`LabCLI`; a lab's own commands
(``<lab>.COMMANDS``, :class:`common.commands.Command`) are listed beside them in ``--help``. Every
command answers a mistake (a missing file, a misspelt option or class name, a NaN loss, a folder it
cannot write) with one line on stderr and a non-zero exit; ``--debug`` (or ``DLA_DEBUG=1``) shows
the traceback instead.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info

import common.callbacks  # noqa: F401  (registers short names: --trainer.callbacks+=CAMExport)
from common import answer_ctrl_c
from common.checkpoints import CheckpointError, check_network, network_state, read_checkpoint
from common.commands import Command, writable_folder
from common.data.sources import DatasetNotFoundError
from common.models.pretrained import CheckpointMismatchError
from common.trainer import LabTrainer, resolve_precision

log = logging.getLogger(__name__)

CHECKPOINT_ALIASES = ("best", "last")
DEBUG_ENV = "DLA_DEBUG"
#: errors whose message already says what to fix: printed as they are
USER_ERRORS = (
    CheckpointError,
    CheckpointMismatchError,
    DatasetNotFoundError,
    FileNotFoundError,
    FloatingPointError,
)
#: the commands every lab has besides Lightning's
SHARED_COMMANDS = {
    "sweep": Command(
        "a grid or a search of runs (fit + test each) on an Optuna study → one markdown table",
        "common.sweep",
    )
}
#: lines of jsonargparse's error accounts that say where it looked, not what is wrong
JSONARGPARSE_NOISE = (
    "Does not validate",
    "Subtypes:",
    "Errors:",
    "Problem with given class_path",
    "Given value",
    "Expected a <class 'NoneType'>",
)
#: the model arguments LabCLI takes from the DataModule (not from the config)
LINKED_FROM_DATA = ("num_classes", "normalization")
#: one line per LightningCLI subcommand, for ``--help``
LIGHTNING_HELP = {
    "fit": "train a model, validating every epoch (resume: --ckpt_path last)",
    "validate": "evaluate a model on the validation split",
    "test": "evaluate a model on the test split (--ckpt_path best|last|FILE)",
    "predict": "run a model over inputs and write its predictions",
}


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
      ``<run>/checkpoints`` (``best.ckpt`` by ``val/acc``, and ``last.ckpt`` after every epoch),
      CSV metrics and figures in ``<run>/version_N``, W&B files in ``<run>/wandb``;
    - ``--ckpt_path best|last`` works in a new process: it names the files in that folder, so
      ``test --ckpt_path best`` after ``fit``, and ``fit --ckpt_path last`` after an interrupted
      fit (resume), do what they say;
    - ``fit`` never replaces a finished run's checkpoints: into a run folder that holds some it
      stops unless told to resume (``--ckpt_path last``) or to start over (``--overwrite true``);
    - ``trainer.precision: auto`` (the default) becomes the fastest precision the hardware runs
      natively (:func:`common.trainer.resolve_precision`), printed and saved in the run's config;
    - the DataModule's class count and normalisation statistics are passed to the model
      (``link_data_to_model``; a lab whose models are not classifiers turns it off in a
      subclass, its package's ``CLI``);
    - checkpoints are loaded with ``weights_only=True``.
    """

    link_data_to_model = True
    #: set by ``_parse_ckpt_path``: the ``--ckpt_path`` file and its network's tensor shapes,
    #: checked against the built network before the Trainer starts (``_check_checkpoint``),
    #: and the config values its saved hyperparameters replace (said once the network fits)
    checkpoint_network: tuple[str, dict[str, torch.Size]] | None = None
    replaced_hyperparameters: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("trainer_class", LabTrainer)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("trainer_defaults", {"default_root_dir": "runs/default"})
        kwargs.setdefault("parser_kwargs", {"exit_on_error": False, "allow_abbrev": False})
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # best.ckpt by the monitored metric; last.ckpt after every epoch (for resuming). Two
        # callbacks: since Lightning 2.6, `save_last` saves only in a step where a top-k
        # checkpoint was saved, so a resumed run would lose the epochs after its best one.
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
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="fit: start over in a run folder that already holds checkpoints (they are "
            "replaced); without it such a fit stops",
        )
        if self.link_data_to_model:
            for key in LINKED_FROM_DATA:
                target = f"model.init_args.{key}"
                parser.link_arguments(f"data.{key}", target, apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        # `precision: auto` resolved here, so the run's config.yaml records the choice
        trainer = (self.config[self.subcommand] if self.subcommand else self.config)["trainer"]
        if trainer.get("precision") == "auto":
            trainer["precision"], reason = resolve_precision("auto", trainer.get("accelerator"))
            rank_zero_info(f"precision: auto → {trainer['precision']} ({reason})")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as error:
            # jsonargparse wraps a constructor's own message in pages of Namespace dumps
            while error.__cause__ is not None:
                error = error.__cause__
            if isinstance(error, USER_ERRORS):  # e.g. a model that cannot be fetched
                raise SystemExit(f"error: {error}") from None
            raise SystemExit(f"error: invalid configuration: {error}") from None

    def instantiate_trainer(self, **kwargs):
        self._check_checkpoint()  # before the Trainer prints or loads anything
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(trainer_config["default_root_dir"])
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        # Runs after parsing, before anything is built (or seeded): fail early on a run folder
        # that cannot be written or holds a finished run, resolve aliases, check the file.
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        writable_folder(config["trainer"]["default_root_dir"], "--trainer.default_root_dir")
        if subcommand == "fit" and config.get("ckpt_path") is None and not config["overwrite"]:
            _refuse_finished_run(Path(config["checkpoint"]["dirpath"]))
        if subcommand:
            if config.get("ckpt_path") in CHECKPOINT_ALIASES:
                dirpath = Path(config["checkpoint"]["dirpath"])
                config["ckpt_path"] = _resolve_checkpoint(dirpath, config["ckpt_path"], subcommand)
            if config.get("ckpt_path"):
                checkpoint = read_checkpoint(config["ckpt_path"])
                _check_model_class(config["ckpt_path"], checkpoint, config)
                shapes = {key: value.shape for key, value in network_state(checkpoint).items()}
                self.checkpoint_network = (config["ckpt_path"], shapes)
                self.replaced_hyperparameters = _replaced_hyperparameters(config, checkpoint)
                if subcommand == "fit":
                    _stop_if_finished(config["ckpt_path"], checkpoint, config["trainer"])
        super()._parse_ckpt_path()

    def _check_checkpoint(self) -> None:
        """A ``--ckpt_path`` of another network than the config's stops in one line naming the
        file (Lightning would fail later, in a state-dict error that names neither); only then
        are the checkpoint's hyperparameters said to replace the config's."""
        if self.checkpoint_network is None:
            return
        path, shapes = self.checkpoint_network
        network = getattr(self.model, "model", None)  # ImageClassifier & co. keep it there
        if isinstance(network, torch.nn.Module):
            check_network(network, shapes, path)
        if self.replaced_hyperparameters:
            log.warning(
                "--ckpt_path %s: the checkpoint's model hyperparameters replace the config's: "
                "%s (to change them, start a new run)",
                path,
                "; ".join(self.replaced_hyperparameters),
            )

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # on every process: a collective call under DDP
        best = next((c for c in self.trainer.checkpoint_callbacks if c.best_model_path), None)
        if best is not None:
            score = best.best_model_score
            detail = "" if score is None else f", {best.monitor} {score:.4f}"
            rank_zero_info(f"checkpoints: {best.dirpath} (best.ckpt{detail}); logs: {log_dir}")

    def after_test(self) -> None:
        log_dir = self.trainer.log_dir  # on every process: a collective call under DDP
        rank_zero_info(f"test outputs and metrics: {log_dir}")

    after_validate = after_test

    def _run_subcommand(self, subcommand: str) -> None:
        config = self.config_init[subcommand]
        if "weights_only" in config and config["weights_only"] is None:
            config["weights_only"] = True
        super()._run_subcommand(subcommand)


def _refuse_finished_run(dirpath: Path) -> None:
    """Stop a ``fit`` that would replace the checkpoints of an earlier run."""
    found = sorted(dirpath.glob("*.ckpt"))
    if found:
        raise SystemExit(
            f"error: {dirpath} already holds {', '.join(p.name for p in found)}: resume with "
            "--ckpt_path last, choose another --trainer.default_root_dir, or start over with "
            "--overwrite true"
        )


def _stop_if_finished(path: str, checkpoint: dict, trainer: dict) -> None:
    """A resumed fit whose checkpoint has already reached ``max_epochs`` (or ``max_steps``) would
    only add an empty ``version_N`` and W&B run: say so and stop, successfully, before they
    exist (``make run`` run twice then goes straight to its test)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    epochs = progress.get("current", {}).get("processed", 0)
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps") or -1
    if max_epochs not in (None, -1) and epochs >= max_epochs:
        reached = f"{epochs} epochs of max_epochs {max_epochs}"
    elif max_steps > 0 and checkpoint.get("global_step", 0) >= max_steps:
        reached = f"{checkpoint['global_step']} steps of max_steps {max_steps}"
    else:
        return
    print(
        f"{path} has finished its training ({reached}): nothing to resume; raise "
        "--trainer.max_epochs to train longer, or start over (--overwrite true, no --ckpt_path)",
        file=sys.stderr,
    )
    raise SystemExit(0)


def _check_model_class(path: str, checkpoint: dict, config) -> None:
    """A checkpoint of another model class than the config's stops here: LightningCLI would
    quietly build the checkpoint's class instead (e.g. test a DQN with a PPO config)."""
    saved = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    configured = (config.get("model") or {}).get("class_path")
    if saved and configured and saved != configured:
        raise CheckpointError(
            f"checkpoint {path} is of {saved}, the config's model is {configured}: pass a "
            "checkpoint of this config's model, or the config it was trained with"
        )


def _replaced_hyperparameters(config, checkpoint: dict) -> tuple[str, ...]:
    """LightningCLI instantiates the model with the checkpoint's saved hyperparameters, over the
    config's: every value that differs (``"key config → saved"``), to be said, since an edited
    config or a command-line override (e.g. a new loss weight when resuming) is otherwise
    silently ignored."""
    saved = checkpoint.get("hyper_parameters") or {}
    init_args = (config.get("model") or {}).get("init_args") or {}
    return tuple(
        f"{key} {init_args[key]!r} → {value!r}"
        for key, value in saved.items()
        if not key.startswith("_")
        and key not in LINKED_FROM_DATA
        and key in init_args
        and _differs(init_args[key], value)
    )


def _differs(configured, saved) -> bool:
    """Whether a config value and a checkpoint's saved one differ (lists vs tuples alike)."""
    if isinstance(configured, list | tuple) and isinstance(saved, list | tuple):
        return len(configured) != len(saved) or any(map(_differs, configured, saved))
    if isinstance(configured, int | float) and isinstance(saved, int | float):
        return float(configured) != float(saved)
    return configured != saved


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


def _check_config_files(argv: list[str]) -> None:
    """Name the file and the line of an unreadable, empty or malformed ``--config``."""
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    paths += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    for path in paths:
        if not Path(path).is_file():
            raise SystemExit(f"error: config file {path} does not exist")
        try:
            content = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise SystemExit(f"error: config file {path}{where}: {problem}") from None
        if not isinstance(content, dict) or not content:
            raise SystemExit(
                f"error: config file {path} is empty or not a mapping of options "
                "(e.g. `trainer: ...`); see --print_config for the full format"
            )


def _load_lab(package: str) -> tuple[type[LabCLI], dict[str, Command]]:
    """The lab's LightningCLI class (``CLI``: a class or its dotted path) and its commands."""
    lab = importlib.import_module(package)
    cli_class = getattr(lab, "CLI", LabCLI)
    if isinstance(cli_class, str):
        module, name = cli_class.rsplit(".", 1)
        cli_class = getattr(importlib.import_module(module), name)
    # the sweep fits and tests classifiers (its tables are of accuracies)
    classifiers = "fit" in cli_class.subcommands() and cli_class.link_data_to_model
    shared = SHARED_COMMANDS if classifiers else {}
    return cli_class, {**shared, **getattr(lab, "COMMANDS", {})}


def lab_help(package: str, cli_class: type[LabCLI], commands: dict[str, Command]) -> str:
    """``python -m <lab> --help``: every command with its one-line description."""
    lab = importlib.import_module(package)
    entries = {name: LIGHTNING_HELP.get(name, "") for name in cli_class.subcommands()}
    entries.update({name: command.help for name, command in commands.items()})
    width = max(map(len, entries))
    summary = (lab.__doc__ or "").strip().splitlines()[0]
    lines = [
        f"usage: python -m {package} <command> [--config FILE ...] [options]",
        "",
        summary,
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, text in entries.items()),
        "",
        f"`python -m {package} <command> --help` lists a command's options; every command takes",
        "--config (repeatable: later files override earlier ones) and --print_config.",
        f"--debug (or {DEBUG_ENV}=1) shows the traceback of an error.",
    ]
    return "\n".join(lines)


def _argument_message(error: ArgumentError) -> str:
    """jsonargparse's multi-line account of a bad value → ``key.path: reason``."""
    keys, reasons = [], []
    for line in str(error).splitlines():
        line = line.strip().removeprefix("- ")
        if match := re.match(r'Parser key "([^"]+)":', line):
            keys.append(match.group(1))
        elif line and not line.startswith(JSONARGPARSE_NOISE):
            reasons.append(line)
    if not keys:
        return _one_line(error)
    return f"--{'.'.join(keys)}: {reasons[0] if reasons else 'invalid value'}"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0][:400] if lines else type(error).__name__


def main(package: str, args: list[str] | None = None) -> None:
    """Entry point of ``python -m <package>``: LightningCLI subcommands (through the package's
    ``CLI`` class, default :class:`LabCLI`) and the lab's own commands (``<package>.COMMANDS``,
    their modules imported only when used)."""
    answer_ctrl_c()
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")
    torch.set_float32_matmul_precision("high")
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    cli_class, commands = _load_lab(package)
    if not argv or argv[0] in ("-h", "--help"):
        print(lab_help(package, cli_class, commands))
        return
    name = argv[0]
    known = [*cli_class.subcommands(), *commands]
    if name not in known:
        raise SystemExit(f"error: unknown command {name!r}; choose among {', '.join(known)}")
    try:
        _check_config_files(argv)
        command = commands.get(name)
        if command is not None and command.module is not None:
            run = importlib.import_module(command.module).main
            extra = {"package": package} if "package" in inspect.signature(run).parameters else {}
            run(argv[1:], **extra)
            return
        if command is not None:  # an alias: the same run as that subcommand
            argv = [command.alias, *argv[1:]]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*args parameter is intended")
            cli_class(args=argv)
    except SystemExit:
        raise
    except ArgumentError as error:
        if debug:
            raise
        raise SystemExit(
            f"error: {_argument_message(error)} (see `python -m {package} {name} --help`)"
        ) from None
    except USER_ERRORS as error:  # their messages are written for users: shown whole
        if debug:
            raise
        raise SystemExit(f"error: {' '.join(str(error).split())}") from None
    except KeyboardInterrupt:
        raise SystemExit("interrupted (a fit resumes with --ckpt_path last)") from None
    except Exception as error:
        if debug:
            raise
        if str(error).startswith("Error(s) in loading state_dict"):
            raise SystemExit(
                "error: the checkpoint does not fit the configured model; give the model config "
                "it was trained with"
            ) from None
        raise SystemExit(
            f"error: {_one_line(error)} ({type(error).__name__}; --debug shows the traceback)"
        ) from None
