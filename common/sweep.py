"""``python -m labN sweep --config configs/labN/sweeps/X.yaml``: a grid of runs → one table.

Each run is an independent ``fit`` then ``test --ckpt_path best`` process of the lab's own CLI,
in its own run folder, so a failed run is reported in the table and never loses the others, and
a finished run (same command) is reused when the sweep is started again. The runs are the trials
of an Optuna study (:mod:`common.study`): any number of sweep processes, on one machine or many,
given the same ``--storage`` share its cells, and a ``search:`` explores ranges with a sampler
(TPE) instead of a grid, and can prune its bad trials. The table is built from the study,
whichever process ran each run.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser
from jsonargparse.typing import PositiveInt

from common.commands import command_parser, writable_folder, write_text_atomic
from common.run_logs import (
    fit_seconds,
    last_in,
    last_value,
    metric_by_epoch,
    newest_rows,
    read_csv,
)
from common.search import Search
from common.study import INTERRUPTED, SweepStudy, Taken, cell_key, masked_url

log = logging.getLogger(__name__)

#: ``launch(worker, args, run_dir, env)``: :func:`run_one` on that worker's device → its result
Launch = Callable[[int, list[str], Path, dict[str, str]], dict]


def slugify(text: str) -> str:
    """A label as a file-name part: "ResNet-20 (pretrained)" → "resnet_20_pretrained"."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def run_metrics(run_dir: Path) -> dict[str, Any]:
    """What the logs of a ``fit`` then ``test`` run folder say: the newest test, and the fit
    over all its sessions (an interrupted fit resumed in a new ``version_*``,
    :mod:`common.run_logs`): its ``val/acc`` curve, wall time and epochs."""
    test_rows = newest_rows(run_dir, "test/acc")
    val_acc = metric_by_epoch(run_dir, "val/acc")
    train_loss = metric_by_epoch(run_dir, "train/loss")
    seconds = fit_seconds(run_dir)
    return {
        "test_acc": last_in(test_rows, "test/acc"),
        "teacher_test_acc": last_in(test_rows, "test/teacher_acc"),  # distillation runs
        "best_val_acc": max((acc for _, acc in val_acc), default=None),
        "final_train_loss": train_loss[-1][1] if train_loss else None,
        "trainable_params": last_value(run_dir, "trainable_params"),
        "val_curve": [list(point) for point in val_acc],  # as JSON keeps it (result.json)
        "grad_norms": _grad_norms(run_dir),
        "fit_seconds": None if seconds is None else seconds[0],
        "fit_epochs": len(train_loss),
    }


def _grad_norms(run_dir: Path) -> list[dict[str, str]]:
    paths = sorted(run_dir.glob("version_*/grad_norms.csv"), key=os.path.getmtime)
    if not paths:
        return []
    return read_csv(paths[-1])


class RunProcesses:
    """The processes of a sweep's runs, which Ctrl-C ends together (:meth:`interrupt`).

    A terminal's Ctrl-C reaches the runs already running, but not a run that a worker starts
    after it and before the sweep has seen it; :meth:`interrupt` ends those too, and once it
    was called no run starts, so a Ctrl-C never waits for a run to finish.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.interrupted = False

    def run(self, command: list[str], **popen: Any) -> int:
        """``command``'s exit status (``-SIGINT`` where Ctrl-C ended it, or came before it)."""
        with self._lock:
            if self.interrupted:
                return -signal.SIGINT
            process = subprocess.Popen(command, **popen)
            self._running.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def interrupt(self) -> None:
        """Ctrl-C: end the running runs (SIGINT, as a terminal sends it) and start no more."""
        with self._lock:
            self.interrupted = True
            for process in self._running:
                process.send_signal(signal.SIGINT)


def run_one(
    package: str,
    args: list[str],
    run_dir: Path,
    threads: int,
    devices: str | None = None,
    env: dict[str, str] | None = None,
    processes: RunProcesses | None = None,
) -> dict[str, Any]:
    """Fit then test one configuration (on the GPUs ``devices``, e.g. ``"1"``, when given, with
    the extra environment variables ``env``, its processes started by ``processes``); returns
    its metrics, the reason it failed, or :data:`~common.study.INTERRUPTED` for a run that
    Ctrl-C ended. A fit that its pruning callback stopped (``pruned.json``) is tested too, and
    says so."""
    own_command = bool(args) and not args[0].startswith("-")
    done = run_dir / "result.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("args") == args:
            log.info("reusing %s", done)
            if not own_command and not saved["status"].startswith("failed"):
                saved.update(run_metrics(run_dir))  # its logs, read again: they are the truth
            return saved
    run_dir.mkdir(parents=True, exist_ok=True)
    pruned = run_dir / "pruned.json"
    pruned.unlink(missing_ok=True)  # an interrupted attempt's: this fit decides anew
    base = [sys.executable, "-m", package]
    process_env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(threads)}
    if devices is not None:
        process_env["CUDA_VISIBLE_DEVICES"] = devices
    result: dict[str, Any] = {"args": args}
    if own_command:  # a lab command (e.g. `baseline`) that writes run_dir/metrics.json
        commands = [[*base, *args, f"--run_dir={run_dir}"]]
    else:
        common = [*args, f"--trainer.default_root_dir={run_dir}"]
        # an interrupted run resumes (its folder then holds checkpoints: `fit` alone would stop)
        commands = [
            [*base, "fit", *common, "--ckpt_path=last"],
            [*base, "test", *common, "--ckpt_path=best"],
        ]
    processes = processes or RunProcesses()
    returncode = 0
    with open(run_dir / "sweep.log", "w") as out:
        for command in commands:
            returncode = processes.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=process_env
            )
            if returncode != 0:
                break
    # a run that Ctrl-C reached may end before the sweep sees the Ctrl-C: it died of SIGINT
    if returncode == -signal.SIGINT or (returncode != 0 and processes.interrupted):
        result["status"] = INTERRUPTED
        return result
    if returncode != 0:
        result["status"] = f"failed: {failure_reason((run_dir / 'sweep.log').read_text())}"
        return result
    result["status"] = "ok"
    if own_command:
        result.update(json.loads((run_dir / "metrics.json").read_text()))
    else:
        result.update(run_metrics(run_dir))
        if pruned.is_file():
            epoch = json.loads(pruned.read_text())["epoch"]
            result.update(status=f"pruned after {epoch + 1} epochs", pruned_epoch=epoch)
    done.write_text(json.dumps(result, indent=1))
    return result


#: a terminal's colours and styles (W&B colours its lines)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failure_reason(output: str) -> str:
    """Why a run failed, in one line, from its output: its last ``error: ...`` line (the lab
    CLI's one-line errors), else its last line that mentions an error, else its last line;
    W&B's own lines (``wandb: ...``, printed as a run exits) and terminal colours left out."""
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith("wandb:")] or ["(no output)"]
    errors = [line for line in lines if line.lower().startswith("error")]
    errors = errors or [line for line in lines if "error" in line.lower()] or lines
    return errors[-1][:160]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def progress_line(run_name: str, result: dict[str, Any]) -> str:
    """What the console says of a run that ended: ``name: ok, test acc 0.9312`` (4 decimals, as
    in the tables), ``name: failed: <why>``, or ``name: interrupted, queued again``."""
    status = result["status"]
    if status == INTERRUPTED:
        return f"{run_name}: interrupted, queued again"
    if status.startswith("failed"):
        return f"{run_name}: {status}"
    return f"{run_name}: {status}, test acc {_fmt(result.get('test_acc'))}"


def write_table(
    path: Path,
    results: dict[tuple[str, Any], dict],
    experiments: list[str],
    values: list,
    parameter_label: str,
    header: str,
) -> None:
    lines = [header, "", f"Test accuracy (rows: model, columns: {parameter_label}).", ""]
    baselines = [(name, r) for (name, value), r in results.items() if name not in experiments]
    if baselines:
        lines += [
            "Baselines: "
            + "; ".join(f"{name} {_fmt(r.get('test_acc'))}" for name, r in baselines)
            + ".",
            "",
        ]
    teachers = sorted(
        {r["teacher_test_acc"] for r in results.values() if r.get("teacher_test_acc")}
    )
    if teachers:  # a distillation sweep: the teacher's own accuracy, measured in its runs
        lines += [f"Teacher: {', '.join(_fmt(t) for t in teachers)} test accuracy.", ""]
    lines.append("| model | " + " | ".join(f"{parameter_label} {v}" for v in values) + " |")
    lines.append("|---|" + "---:|" * len(values))
    for name in experiments:
        cells = []
        for value in values:
            r = results[(name, value)]
            status = r["status"]  # ok, failed: <why>, or running / waiting (another worker's)
            cells.append(_fmt(r.get("test_acc")) if status == "ok" else status.split(":")[0])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every run (fit wall time: from its log files, every session of an interrupted and "
        "resumed fit summed, validation included):",
        "",
        f"| model | {parameter_label} | test acc | best val acc | final train loss | "
        "trainable params | epochs | fit wall time (s) | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (name, value), r in results.items():
        params = r.get("trainable_params")
        lines.append(
            f"| {name} | {value} | {_fmt(r.get('test_acc'))} | "
            f"{_fmt(r.get('best_val_acc', r.get('val_acc')))} | "
            f"{_fmt(r.get('final_train_loss'))} | {'–' if params is None else f'{params:,.0f}'} | "
            f"{r.get('fit_epochs', '–')} | {_fmt(r.get('fit_seconds'), 1)} | {r['status']} |"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def baselines_and_best(
    results: dict[tuple[str, Any], dict], experiments: list[str]
) -> dict[tuple[str, Any], dict]:
    """The baselines' results and that of the grid's run of best test accuracy (if any)."""
    grid = {cell: r for cell, r in results.items() if cell[0] in experiments and r.get("test_acc")}
    best = max(grid, key=lambda cell: grid[cell]["test_acc"], default=None)
    return {cell: r for cell, r in results.items() if cell[0] not in experiments or cell == best}


def gradient_norm_panels(
    results: dict[tuple[str, Any], dict], experiments: list[str], values: list, label: str
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """One panel per model; one weight series and one bias series per swept value."""
    panels: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name in experiments:
        series = {}
        for value in values:
            rows = results[(name, value)].get("grad_norms") or []
            for kind in ("weight", "bias"):
                points = [(int(r["depth"]), float(r["norm"])) for r in rows if r["kind"] == kind]
                if points:
                    series[f"{label}={value} {kind}"] = points
        panels[name] = series
    return panels


def write_search_table(
    path: Path, trials: list[tuple[int, dict[str, Any], dict]], search: Search, header: str
) -> None:
    """One row per trial, the best ``search.objective`` first, and the best trial's arguments;
    pruned, failed, running and waiting trials last."""

    def objective(trial: tuple[int, dict, dict]) -> float | None:
        result = trial[2]
        return result.get(search.objective) if result["status"] == "ok" else None

    ranked = sorted(
        (t for t in trials if objective(t) is not None),
        key=objective,
        reverse=search.direction == "maximize",
    )
    keys = list(search.space)
    pruner = (
        f", {search.pruner} pruner after {search.pruning_warmup_epochs} warmup epochs"
        if search.pruner != "none"
        else ""
    )
    lines = [
        header,
        "",
        f"Search of {search.objective} ({search.direction}), {search.sampler} sampler{pruner}, "
        f"{search.trials} trials; best first.",
        "",
    ]
    if ranked:
        number, params, _ = ranked[0]
        arguments = " ".join(f"--{key}={params[key]}" for key in keys)
        lines += [f"Best: trial {number}, `{arguments}`.", ""]
    lines += [
        "| trial | " + " | ".join(keys) + f" | {search.objective} | test acc | "
        "fit wall time (s) | status |",
        "|---:|" + "---:|" * len(keys) + "---:|---:|---:|---|",
    ]
    for number, params, r in [*ranked, *(t for t in trials if objective(t) is None)]:
        values = [params.get(key, "–") for key in keys]
        lines.append(
            f"| {number} | "
            + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values)
            + f" | {_fmt(r.get(search.objective))} | {_fmt(r.get('test_acc'))} | "
            f"{_fmt(r.get('fit_seconds'), 1)} | {r['status']} |"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def _parser(package: str) -> ArgumentParser:
    parser = command_parser(f"python -m {package} sweep", __doc__)
    parser.add_argument(
        "--experiments",
        type=dict[str, list[str]],
        required=True,
        help="row name -> CLI arguments of that model (e.g. --config, overrides); a search "
        "has one row, its base arguments",
    )
    parser.add_argument("--parameter", type=str | None, default=None, help="CLI key swept")
    parser.add_argument("--parameter_label", type=str, default="value")
    parser.add_argument("--values", type=list[Any] | None, default=None, help="its grid values")
    parser.add_argument(
        "--baselines",
        type=dict[str, list[str]],
        default={},
        help="row name -> arguments of a run outside the grid (no --args added), listed first; "
        "a lab command such as `baseline --config=...` instead of `--config=...` runs once",
    )
    parser.add_argument("--search", type=Search | None, default=None, help="a search, not a grid")
    parser.add_argument("--args", type=list[str], default=[], help="extra arguments of every run")
    parser.add_argument("--run_dir", type=str, required=True, help="runs go to run_dir/<row>_<v>")
    parser.add_argument(
        "--output_dir", type=str | None, default=None, help="table and figures (default: run_dir)"
    )
    parser.add_argument("--table", type=str, required=True, help="markdown table file name")
    parser.add_argument("--figure", type=str | None, default=None, help="gradient-norm figure")
    parser.add_argument("--curves", type=str | None, default=None, help="val/acc curves figure")
    parser.add_argument(
        "--curves_of",
        type=Literal["all", "baselines_and_best"],
        default="all",
        help="runs drawn in --curves: all, or the baselines and the grid's best test accuracy",
    )
    parser.add_argument(
        "--jobs",
        type=PositiveInt | None,
        default=None,
        help="runs in parallel (default: 1 or one per device)",
    )
    parser.add_argument(
        "--devices", type=list[int] | None, default=None, help="GPUs, one run on each at a time"
    )
    parser.add_argument(
        "--threads",
        type=PositiveInt | None,
        default=None,
        help="CPU threads per run (default: this machine's cores / jobs)",
    )
    parser.add_argument(
        "--storage",
        type=str | None,
        default=None,
        help="the study's database URL, shared by every worker (default: sqlite:///"
        "<run_dir>/study.db); e.g. postgresql://user:password@host/db (pip install -e "
        "'.[postgres]')",
    )
    parser.add_argument("--study", type=str | None, default=None, help="default: the table's stem")
    parser.add_argument(
        "--heartbeat",
        type=PositiveInt,
        default=60,
        help="seconds; a worker silent 2x as long is dead and its run is queued again",
    )
    return parser


def _check(cfg) -> None:
    if cfg.search is None and (cfg.parameter is None or cfg["values"] is None):
        raise SystemExit("error: a sweep needs --parameter and --values (a grid) or --search")
    if cfg.search is not None and (
        len(cfg.experiments) != 1 or cfg.baselines or cfg.figure or cfg["values"] is not None
    ):
        raise SystemExit(
            "error: a --search sweep has one row in --experiments (its base arguments) and no "
            "--values, --baselines or --figure"
        )
    if cfg.search is not None and cfg.search.objective == "test_acc":
        log.warning("objective test_acc chooses on test data: its test accuracy is optimistic")


def _grid_values(cfg) -> list:
    # list values (e.g. blocks per stage) become their JSON text: usable as keys and CLI values
    return [json.dumps(v) if isinstance(v, list) else v for v in cfg["values"]]


def _grid(
    cfg, study: SweepStudy, launch: Launch, interrupt: Callable[[], None]
) -> dict[tuple[str, Any], dict]:
    """Run the grid's cells not done yet (those left to this worker) → every cell's result."""
    runs = [
        (name, "–", args, Path(cfg.run_dir) / slugify(name)) for name, args in cfg.baselines.items()
    ]
    for name, value in product(cfg.experiments, _grid_values(cfg)):
        args = [*cfg.experiments[name], f"--{cfg.parameter}={value}", *cfg.args]
        runs.append(
            (name, value, args, Path(cfg.run_dir) / f"{slugify(name)}_{slugify(str(value))}")
        )
    cells = {cell_key({"row": n, "value": v, "args": a}): (n, v, a, d) for n, v, a, d in runs}
    study.queue_cells([{"row": n, "value": v, "args": a} for n, v, a, _ in cells.values()])

    def take() -> Taken | None:
        claimed = study.next_cell(set(cells))
        if claimed is None:
            return None
        number, key = claimed
        name, value, args, run_dir = cells[key]
        log.info("run %s %s=%s → %s", name, cfg.parameter_label, value, run_dir)
        return number, lambda worker: launch(worker, args, run_dir, {})

    study.work(cfg.jobs, take, "test_acc", interrupt)
    results, waiting = study.cell_results(), {"status": "waiting"}
    return {(name, value): results.get(key, waiting) for key, (name, value, _, _) in cells.items()}


def _search(
    cfg, study: SweepStudy, launch: Launch, interrupt: Callable[[], None]
) -> list[tuple[int, dict[str, Any], dict]]:
    """Run trials until the search's budget is spent → every trial's number, parameters and
    result."""
    ((name, base),) = cfg.experiments.items()

    def take() -> Taken | None:
        trial = study.next_search_trial(cfg.search)
        if trial is None:
            return None
        number, params, folder = trial
        drawn = [f"--{key}={value}" for key, value in params.items()]
        args = [*base, *drawn, *cfg.args, *cfg.search.pruning_args()]
        run_dir = Path(cfg.run_dir) / folder
        log.info("run %s trial %d %s → %s", name, number, " ".join(args[len(base) :]), run_dir)
        return number, lambda worker: launch(worker, args, run_dir, study.trial_env(number))

    study.work(cfg.jobs, take, cfg.search.objective, interrupt)
    return study.search_results()


def _figures(cfg, results: dict, curves: dict[str, list], output_dir: Path) -> list[Path]:
    """The gradient-norm panels (a grid's ``--figure``) and the val/acc curves (``--curves``)."""
    if not (cfg.figure or cfg.curves):
        return []
    from common.plots import plot_curves, plot_gradient_norms  # torchmetrics: seconds to import

    written = []
    if cfg.figure:
        values, label = _grid_values(cfg), cfg.parameter_label
        panels = gradient_norm_panels(results, list(cfg.experiments), values, label)
        title = "gradient norm vs layer depth"
        written.append(plot_gradient_norms(panels, output_dir / cfg.figure, title=title))
    if cfg.curves:
        title = "validation accuracy of " + (
            "every run" if cfg.curves_of == "all" else "the baselines and the best run"
        )
        written.append(plot_curves(curves, output_dir / cfg.curves, title=title))
    return written


def main(argv: list[str], package: str) -> dict[Any, dict]:
    """Run the sweep's runs left to this worker, then write the table and figures of all of
    them; returns every run's result by cell (grid) or trial number (search)."""
    parser = _parser(package)
    try:
        cfg = parser.instantiate(parser.parse_args(argv))
    except ValueError as error:  # jsonargparse wraps what a search parameter says is wrong
        raise SystemExit(f"error: --search: {error.__cause__ or error}") from None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _check(cfg)
    run_root = writable_folder(cfg.run_dir, "--run_dir")
    output_dir = writable_folder(cfg.output_dir or cfg.run_dir, "--output_dir")
    devices = [str(d) for d in cfg.devices] if cfg.devices else [None]
    cfg.jobs = cfg.jobs or len(devices)
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.jobs)

    processes = RunProcesses()

    def launch(worker: int, args: list[str], run_dir: Path, env: dict[str, str]) -> dict:
        device = devices[worker % len(devices)]
        result = run_one(package, args, run_dir, threads, device, env, processes)
        log.info("  %s", progress_line(run_dir.name, result))
        return result

    url = cfg.storage or f"sqlite:///{run_root / 'study.db'}"
    name = cfg.study or Path(cfg.table).stem
    study = SweepStudy(url, name, cfg.heartbeat, cfg.search.direction if cfg.search else "maximize")
    start = time.perf_counter()
    if cfg.search:
        trials = _search(cfg, study, launch, processes.interrupt)
        results = {number: result for number, _, result in trials}
    else:
        results = _grid(cfg, study, launch, processes.interrupt)
    wall = time.perf_counter() - start
    shown = " ".join(argv).replace(url, masked_url(url))  # a --storage password stays private
    command = f"python -m {package} sweep {shown}"
    header = (
        f"# {Path(cfg.table).stem}\n\n`{command}`, {cfg.jobs} job(s) on {platform.machine()} "
        f"({os.cpu_count()} cores), sweep wall time {wall / 60:.1f} min (reused runs count 0)."
        f" Study `{name}` in `{masked_url(url)}`."
    )
    table = output_dir / cfg.table
    if cfg.search:
        write_search_table(table, trials, cfg.search, header)
        curves = {f"trial {n}": r.get("val_curve") or [] for n, r in results.items()}
    else:
        values = _grid_values(cfg)
        write_table(table, results, list(cfg.experiments), values, cfg.parameter_label, header)
        cells = results
        if cfg.curves_of == "baselines_and_best":
            cells = baselines_and_best(results, list(cfg.experiments))
        curves = {}
        for (row, value), r in cells.items():
            label = row if value == "–" else f"{row}, {cfg.parameter_label} {value}"
            curves[label] = r.get("val_curve") or []
    written = [table, *_figures(cfg, results, curves, output_dir)]
    print(table.read_text())
    log.info("wrote %s", ", ".join(map(str, written)))
    return results
