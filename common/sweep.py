"""``python -m labN sweep --config configs/labN/sweeps/X.yaml``: a grid of runs → one table.

Each run is an independent ``fit`` then ``test --ckpt_path best`` process of the lab's own CLI,
in its own run folder, so a failed run is reported in the table and never loses the others, and
a finished run (same command) is reused when the sweep is started again.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jsonargparse.typing import PositiveInt

from common.commands import command_parser, writable_folder, write_text_atomic
from common.plots import plot_curves, plot_gradient_norms

log = logging.getLogger(__name__)


def slugify(text: str) -> str:
    """A label as a file-name part: "ResNet-20 (pretrained)" → "resnet_20_pretrained"."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _newest_metrics(run_dir: Path, column: str) -> list[dict[str, str]]:
    """Rows of the newest ``version_*/metrics.csv`` under ``run_dir`` that has ``column``."""
    for path in sorted(run_dir.glob("version_*/metrics.csv"), key=os.path.getmtime, reverse=True):
        with open(path) as f:
            rows = list(csv.DictReader(f))
        if rows and column in rows[0]:
            return rows
    return []


def _last_value(rows: list[dict[str, str]], column: str) -> float | None:
    values = [float(r[column]) for r in rows if r.get(column)]
    return values[-1] if values else None


def _grad_norms(run_dir: Path) -> list[dict[str, str]]:
    paths = sorted(run_dir.glob("version_*/grad_norms.csv"), key=os.path.getmtime)
    if not paths:
        return []
    with open(paths[-1]) as f:
        return list(csv.DictReader(f))


def run_one(package: str, args: list[str], run_dir: Path, threads: int) -> dict[str, Any]:
    """Fit then test one configuration; returns its metrics or the reason it failed."""
    done = run_dir / "result.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("args") == args:
            log.info("reusing %s", done)
            return saved
    run_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", package]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result: dict[str, Any] = {"args": args}
    own_command = bool(args) and not args[0].startswith("-")
    if own_command:  # a lab command (e.g. `baseline`) that writes run_dir/metrics.json
        commands = [[*base, *args, f"--run_dir={run_dir}"]]
    else:
        common = [*args, f"--trainer.default_root_dir={run_dir}"]
        # an interrupted run resumes (its folder then holds checkpoints: `fit` alone would stop)
        commands = [
            [*base, "fit", *common, "--ckpt_path=last"],
            [*base, "test", *common, "--ckpt_path=best"],
        ]
    start = time.perf_counter()
    returncode = 0
    with open(run_dir / "sweep.log", "w") as out:
        for command in commands:
            returncode = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env
            ).returncode
            result.setdefault("fit_seconds", time.perf_counter() - start)
            if returncode != 0:
                break
    if returncode != 0:
        lines = (run_dir / "sweep.log").read_text().strip().splitlines() or ["(no output)"]
        errors = [line for line in lines if "error" in line.lower()] or lines
        result["status"] = f"failed: {errors[-1].strip()[:160]}"
        return result
    result["status"] = "ok"
    if own_command:
        result.update(json.loads((run_dir / "metrics.json").read_text()))
    else:
        fit_rows = _newest_metrics(run_dir, "train/loss")
        val_acc = [(int(r["epoch"]), float(r["val/acc"])) for r in fit_rows if r.get("val/acc")]
        test_rows = _newest_metrics(run_dir, "test/acc")
        result.update(
            test_acc=_last_value(test_rows, "test/acc"),
            teacher_test_acc=_last_value(test_rows, "test/teacher_acc"),  # distillation runs
            best_val_acc=max((acc for _, acc in val_acc), default=None),
            final_train_loss=_last_value(fit_rows, "train/loss"),
            trainable_params=_last_value(fit_rows, "trainable_params"),
            val_curve=val_acc,
            grad_norms=_grad_norms(run_dir),
        )
    done.write_text(json.dumps(result, indent=1))
    return result


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


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
            cells.append(_fmt(r.get("test_acc")) if r["status"] == "ok" else "failed")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every run:",
        "",
        f"| model | {parameter_label} | test acc | best val acc | final train loss | "
        "trainable params | fit wall time (s) | status |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (name, value), r in results.items():
        params = r.get("trainable_params")
        lines.append(
            f"| {name} | {value} | {_fmt(r.get('test_acc'))} | "
            f"{_fmt(r.get('best_val_acc', r.get('val_acc')))} | "
            f"{_fmt(r.get('final_train_loss'))} | {'–' if params is None else f'{params:,.0f}'} | "
            f"{_fmt(r.get('fit_seconds'), 1)} | {r['status']} |"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


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


def main(argv: list[str], package: str) -> dict[tuple[str, Any], dict]:
    parser = command_parser(f"python -m {package} sweep", __doc__)
    parser.add_argument(
        "--experiments",
        type=dict[str, list[str]],
        required=True,
        help="row name -> CLI arguments of that model (e.g. --config, overrides)",
    )
    parser.add_argument("--parameter", type=str, required=True, help="CLI key that is swept")
    parser.add_argument("--parameter_label", type=str, default="value")
    parser.add_argument("--values", type=list[Any], required=True)
    parser.add_argument(
        "--baselines",
        type=dict[str, list[str]],
        default={},
        help="row name -> arguments of a run outside the grid (no --args added), listed first; "
        "a lab command such as `baseline --config=...` instead of `--config=...` runs once",
    )
    parser.add_argument("--args", type=list[str], default=[], help="extra arguments of every run")
    parser.add_argument("--run_dir", type=str, required=True, help="runs go to run_dir/<row>_<v>")
    parser.add_argument(
        "--output_dir", type=str | None, default=None, help="table and figures (default: run_dir)"
    )
    parser.add_argument("--table", type=str, required=True, help="markdown table file name")
    parser.add_argument("--figure", type=str | None, default=None, help="gradient-norm figure")
    parser.add_argument("--curves", type=str | None, default=None, help="val/acc curves figure")
    parser.add_argument("--jobs", type=PositiveInt, default=1, help="runs in parallel")
    cfg = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output_dir = writable_folder(cfg.output_dir or cfg.run_dir, "--output_dir")

    threads = max(1, (os.cpu_count() or 1) // cfg.jobs)
    # list values (e.g. blocks per stage) become their JSON text: usable as keys and CLI values
    values = [json.dumps(v) if isinstance(v, list) else v for v in cfg["values"]]
    grid = [(name, "–") for name in cfg.baselines]
    grid += [(name, value) for name in cfg.experiments for value in values]
    start = time.perf_counter()

    def launch(cell: tuple[str, Any]) -> dict:
        name, value = cell
        if name in cfg.baselines:
            args, run_dir = cfg.baselines[name], Path(cfg.run_dir) / slugify(name)
        else:
            args = [*cfg.experiments[name], f"--{cfg.parameter}={value}", *cfg.args]
            run_dir = Path(cfg.run_dir) / f"{slugify(name)}_{slugify(str(value))}"
        log.info("run %s %s=%s → %s", name, cfg.parameter_label, value, run_dir)
        result = run_one(package, args, run_dir, threads)
        log.info("  %s: %s test acc %s", run_dir.name, result["status"], result.get("test_acc"))
        return result

    with ThreadPoolExecutor(cfg.jobs) as pool:
        results = dict(zip(grid, pool.map(launch, grid), strict=True))
    wall = time.perf_counter() - start
    command = f"python -m {package} sweep " + " ".join(argv)
    header = (
        f"# {Path(cfg.table).stem}\n\n`{command}`, {cfg.jobs} job(s) on {platform.machine()} "
        f"({os.cpu_count()} cores), sweep wall time {wall / 60:.1f} min (reused runs count 0)."
    )
    table = output_dir / cfg.table
    write_table(table, results, list(cfg.experiments), values, cfg.parameter_label, header)
    written = [table]
    if cfg.figure:
        panels = gradient_norm_panels(results, list(cfg.experiments), values, cfg.parameter_label)
        written.append(
            plot_gradient_norms(
                panels, output_dir / cfg.figure, title="gradient norm vs layer depth"
            )
        )
    if cfg.curves:
        curves = {
            f"{name}, {cfg.parameter_label} {value}": r.get("val_curve") or []
            for (name, value), r in results.items()
        }
        written.append(
            plot_curves(curves, output_dir / cfg.curves, title="validation accuracy of every run")
        )
    print(table.read_text())
    log.info("wrote %s", ", ".join(map(str, written)))
    return results
