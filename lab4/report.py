"""``python -m lab4 report``: one table over several ``python -m lab4 test`` runs.

``--runs`` maps each model's label (its name in the table) to its run folder
(``trainer.default_root_dir``); each kind reads the newest ``version_*`` files there:

- ``ood`` (``results/lab4/ood.md``): ``ood_summary.csv`` and ``ood_metrics.csv``
  (:class:`common.callbacks.OODEvaluation`). Rows are model × detector with the model's ID test
  accuracy; the first table has the group means (near- and far-OOD AUROC and both FPR@95
  conventions), the second every metric per OOD set; detectors that use no classifier (the
  autoencoder) get rows of their own. The figures of MSP and of each model's best detector on
  the first group (near-OOD) go beside the table; models without a test run yet are named under
  it.
- ``adversarial`` (``results/lab4/adversarial_training.md``): one row per model from
  ``robustness.csv`` (:class:`lab4.robustness.RobustnessEvaluation`) and ``ood_metrics.csv``:
  clean accuracy, robust accuracy and success rate per attack and ε, near-OOD AUROC. A model
  without a test run yet is listed as "not run".
- ``attacks`` (``results/lab4/attacks/attacks.md``): the attack sweeps
  (``configs/lab4/attacks/``), each model's newest ``robustness.json`` per target, untargeted
  first, one row per attack × ε; each sweep's json and figures go beside the table; models
  without a sweep yet are named under it.
- ``robustness`` (``results/lab4/robustness.md``): the field's standard evaluation, one row per
  model from the newest ``robustness_strong.json`` (``configs/lab4/blocks/attack_strong.yaml``,
  L∞ balls): clean accuracy, robust accuracy per attack × radius, and the training wall time of
  the fit in the same run folder (:func:`common.run_logs.fit_seconds`). A model without that
  test run yet is listed as "not run"; each json goes beside the table, and a figure of the
  per-epoch ``val/pgd_acc`` of the fits that logged it (the catastrophic-overfitting check).

A run not made yet is named in a warning (stderr) and in the report, which shows the others;
when no run of the config exists the report stops in one line. Without ``--output`` the table
is printed and nothing is written. With it, every run is read first (an unreadable one stops
the report in one line, before anything is written), then the table is written atomically and
the files beside it copied.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from jsonargparse import Namespace

from common.commands import command_parser, copy_atomic, write_text_atomic
from common.metrics import OOD_METRIC_LEGEND, OOD_METRIC_TITLES, OOD_METRICS
from common.plots import plot_curves
from common.run_logs import fit_seconds, metric_by_epoch, read_csv
from common.sweep import slugify
from lab4.attacks import REPORTED_METRICS

log = logging.getLogger(__name__)

#: the robustness report's figure of ``val/pgd_acc`` per epoch, beside its table
PGD_CURVES = "robustness_pgd_curves.png"


@dataclass
class Report:
    """A table, the files to copy beside it (name beside the table → source), and the figures
    to draw beside it (name → a function that draws it at the path it is given)."""

    text: str
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Callable[[Path], Path]] = field(default_factory=dict)


def versions(run_dir: Path, name: str) -> list[Path]:
    """Every ``version_*/<name>`` under ``run_dir``, oldest first; an error if there is none."""
    found = sorted(run_dir.glob(f"version_*/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no {name} under {run_dir}; run `python -m lab4 test` with its config first"
        )
    return found


def available(runs: dict[str, str], name: str) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Each run's ``version_*/<name>`` files (oldest first) where it has some, and the runs
    without any (label → run folder), each named in one warning: a report shows the models that
    were run. An error, in one line, when no run has one."""
    found, missing = {}, {}
    for label, run_dir in runs.items():
        try:
            found[label] = versions(Path(run_dir), name)
        except FileNotFoundError:
            missing[label] = run_dir
    if not found:
        raise FileNotFoundError(
            f"no {name} under any run folder ({', '.join(runs.values())}); run `python -m lab4 "
            "test` with their configs first (the commands head the report's config)"
        )
    for label, run_dir in missing.items():
        log.warning("not yet run: %s (no %s under %s)", label, name, run_dir)
    return found, missing


def not_run_note(missing: dict[str, str]) -> list[str]:
    """The report's last lines: the models whose test run is missing, and their run folders."""
    if not missing:
        return []
    runs = "; ".join(f"{label} ({run_dir})" for label, run_dir in missing.items())
    return ["", f"Not yet run (`python -m lab4 test` with its config, then report again): {runs}."]


def markdown(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A markdown table; ``align`` is the separator row without its leading ``|``."""
    lines = ["| " + " | ".join(header) + " |", "|" + align]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def ood_report(cfg: Namespace) -> Report:
    """Two tables, rows model × detector: the group means (AUROC and both FPR@95 per group, as
    OpenOOD v1.5 reports near- and far-OOD) and every metric per OOD set."""
    per_set: dict[tuple[str, str], dict[str, dict]] = {}  # (model, detector) → OOD set → row
    per_group: dict[tuple[str, str], dict[str, dict]] = {}  # (model, detector) → group → row
    accuracy, ood_sets, groups, files = {}, [], {}, {}
    found, missing = available(cfg.runs, "ood_metrics.csv")
    for label, paths in found.items():
        path = paths[-1]
        summary = path.with_name("ood_summary.csv")
        if not summary.is_file():
            raise FileNotFoundError(
                f"{path.parent} has no ood_summary.csv (a run from before OOD groups): run "
                "`python -m lab4 test` with its config again"
            )
        for table, rows, column in ((per_set, read_csv(path), "ood_set"),
                                    (per_group, read_csv(summary), "group")):  # fmt: skip
            for row in rows:
                model = row["detector"] if row["detector"] in cfg.classifier_free else label
                table.setdefault((model, row["detector"]), {})[row[column]] = row
                accuracy.setdefault(model, "—" if model != label else row["id_accuracy"])
                if column == "ood_set" and row["ood_set"] not in ood_sets:
                    ood_sets.append(row["ood_set"])
                if column == "group":
                    groups.setdefault(row["group"], row["ood_sets"])
        first_group = next(iter(groups), None)
        own = {d: rows[first_group] for (m, d), rows in per_group.items()
               if m == label and first_group in rows}  # fmt: skip
        if own:
            best = max(own, key=lambda d: float(own[d]["auroc"]))
            for detector in dict.fromkeys(["msp", best]):
                figure = path.parent / f"ood_{detector}.png"
                if figure.is_file():
                    files[f"ood_{slugify(label)}_{detector}.png"] = figure

    def cell(row: dict | None, metrics: tuple[str, ...]) -> str:
        return " / ".join(f"{float(row[m]):.3f}" for m in metrics) if row else "—"

    def first_columns(model: str, detector: str) -> list[str]:
        acc = accuracy[model]
        return [model, acc if acc == "—" else f"{float(acc):.4f}", detector]

    fprs = ("fpr95_id_kept", "fpr95_ood_caught")
    group_header = [f"{g} AUROC ↑" for g in groups]
    group_header += [f"{g} FPR@95 ID-kept / OOD-caught ↓" for g in groups]
    group_rows = [
        first_columns(model, detector)
        + [cell(cells.get(g), ("auroc",)) for g in groups]
        + [cell(cells.get(g), fprs) for g in groups]
        for (model, detector), cells in per_group.items()
    ]
    set_rows = [
        first_columns(model, detector) + [cell(cells.get(s), OOD_METRICS) for s in ood_sets]
        for (model, detector), cells in per_set.items()
    ]
    group_sets = "; ".join(f"{g} = {', '.join(sets.split())}" for g, sets in groups.items())
    lines = [
        f"ID = CIFAR-10 test. Means over each group's OOD sets ({group_sets}):",
        "",
        *markdown(
            ["model", "ID acc", "detector", *group_header],
            group_rows,
            "---|---:|---|" + "---:|" * len(group_header),
        ),  # fmt: skip
        "",
        "Per OOD set, cells: " + " / ".join(OOD_METRIC_TITLES[m] for m in OOD_METRICS) + ":",
        "",
        *markdown(
            ["model", "ID acc", "detector", *ood_sets],
            set_rows,
            "---|---:|---|" + "---|" * len(ood_sets),
        ),  # fmt: skip
        "",
        OOD_METRIC_LEGEND,
        *not_run_note(missing),
    ]
    return Report("\n".join(lines) + "\n", files)


def adversarial_report(cfg: Namespace) -> Report:
    """Robustness and near-OOD detection of each model, one row each."""
    header = ["model", "clean acc"]
    rows, missing = [], []
    for label, run_dir in cfg.runs.items():
        if not list(Path(run_dir).glob("version_*/robustness.csv")):
            log.warning("%s: no test run in %s yet; listed as not run", label, run_dir)
            missing.append(label)
            continue
        robustness = read_csv(versions(Path(run_dir), "robustness.csv")[-1])
        ood = read_csv(versions(Path(run_dir), "ood_metrics.csv")[-1])
        ood = [r for r in ood if r["ood_set"] == cfg.near_ood]
        if not header[2:]:
            header += [
                f"{r['attack']} ε={float(r['epsilon']):g} robust acc / success" for r in robustness
            ]
            header += [f"{cfg.near_ood} AUROC msp", f"{cfg.near_ood} AUROC best"]
        best = max(ood, key=lambda r: float(r["auroc"]))
        msp = next(r for r in ood if r["detector"] == "msp")
        rows.append(
            [label, f"{float(ood[0]['id_accuracy']):.4f}"]
            + [
                f"{float(r['robust_accuracy']):.3f} / {float(r['success_rate']):.3f}"
                for r in robustness
            ]
            + [f"{float(msp['auroc']):.4f}", f"{float(best['auroc']):.4f} ({best['detector']})"]
        )
    lines = [
        "Robust accuracy over all images / success rate over those correct before the attack"
        " (1000 CIFAR-10 test images, a seeded random choice; ε per step in 1/255;"
        " iterative: ≤ 10 steps).",
        "",
        *markdown(header, rows, "---|" + "---:|" * (len(header) - 1)),
    ]
    lines += [f"| {label} | not run |" + " |" * (len(header) - 2) for label in missing]
    return Report("\n".join(lines) + "\n")


def sweeps(paths: list[Path]) -> dict[str | None, Path]:
    """The newest of a model's ``robustness.json`` ``paths`` (oldest first) for each target,
    untargeted first."""
    by_target = {json.loads(p.read_text())["target"]: p for p in paths}
    return dict(sorted(by_target.items(), key=lambda item: (item[0] is not None, item[0] or "")))


def attacks_report(cfg: Namespace) -> Report:
    """Every model's attack sweeps, one row per attack × ε."""
    rows, files = [], {}
    found, missing = available(cfg.runs, "robustness.json")
    for label, paths in found.items():
        for target, path in sweeps(paths).items():
            slug = slugify(label) + (f"_{target}" if target else "")
            files[f"{slug}.json"] = path
            for figure in ("sweep", "examples"):
                if (source := path.parent / f"robustness_{figure}.png").is_file():
                    files[f"{slug}_{figure}.png"] = source
            for row in json.loads(path.read_text())["rows"]:
                cells = [
                    f"{row[c]:.3f}" if not math.isnan(row[c]) else "—" for c in REPORTED_METRICS
                ]
                rows.append(
                    [
                        label,
                        row["attack"],
                        target or "—",
                        f"{row['epsilon']:g}",
                        f"{row['clean_accuracy']:.3f}",
                        *cells,
                    ]
                )
    header = ["model", "attack", "target", "ε", "clean acc", "success rate", "mean iters"]
    header += ["conf. drop", "robust acc"]
    lines = [
        "Success rate over images classified correctly before the attack; mean iterations over",
        "successes; confidence drop = mean fall of the true-class probability; robust accuracy",
        "over all images. ε per step in 1/255.",
        "",
        *markdown(header, rows, "---|---|---|" + "---:|" * 6),
        *not_run_note(missing),
    ]
    return Report("\n".join(lines) + "\n", files)


#: an attack's name in the robustness table (``{steps}``: its steps per run)
ATTACK_TITLES = {"fgsm": "FGSM", "iterative": "I-FGSM-{steps}", "pgd": "PGD-{steps}",
                 "apgd_ce": "APGD-CE"}  # fmt: skip


def duration(seconds: float) -> str:
    """``"42 s"``, ``"17 min"`` or ``"1.5 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def robustness_report(cfg: Namespace) -> Report:
    """The field's robustness table: clean and robust accuracy per attack × L∞ radius
    (``robustness_strong.json``) and the training wall time, one row per model."""
    runs, files, missing = {}, {}, []
    for label, run_dir in cfg.runs.items():
        if not list(Path(run_dir).glob("version_*/robustness_strong.json")):
            log.warning("%s: no strong test run in %s yet; listed as not run", label, run_dir)
            missing.append(label)
            continue
        path = versions(Path(run_dir), "robustness_strong.json")[-1]
        runs[label] = json.loads(path.read_text())
        files[f"{slugify(label)}_robustness_strong.json"] = path
    columns: dict[tuple, str] = {}  # (attack, steps, restarts, ε) → header, first seen first
    for run in runs.values():
        for row in run["rows"]:
            title = ATTACK_TITLES.get(row["attack"], row["attack"]).format(steps=row["steps"])
            if row["attack"] == "apgd_ce" and row["steps"] != 100:  # 100: AutoAttack's, unsaid
                title += f"-{row['steps']}"
            title += f" ×{row['restarts']}" if row["restarts"] > 1 else ""
            key = (row["attack"], row["steps"], row["restarts"], row["epsilon"])
            columns.setdefault(key, f"{title} {row['epsilon']:g}/255")

    def wall_time(run_dir: str) -> str:
        found = fit_seconds(Path(run_dir))
        return "—" if found is None else ("" if found[1] else "≈ ") + duration(found[0])

    rows = []
    for label, run in runs.items():
        robust = {(r["attack"], r["steps"], r["restarts"], r["epsilon"]): r for r in run["rows"]}
        cells = [f"{robust[k]['robust_accuracy']:.3f}" if k in robust else "—" for k in columns]
        clean = run["rows"][0]["clean_accuracy"]
        rows.append([label, f"{clean:.3f}", *cells, wall_time(cfg.runs[label])])
    rows += [[label, "not run", *[""] * len(columns), wall_time(cfg.runs[label])]
             for label in missing]  # fmt: skip
    sizes = " / ".join(sorted({str(run["num_images"]) for run in runs.values()})) or "the"
    header = ["model", "clean acc", *[f"{c} ↑" for c in columns.values()], "training time"]
    lines = [
        f"Robust accuracy: the fraction of {sizes} CIFAR-10 test images (class-balanced, the same",
        "for every model) still classified correctly when the attack may move each pixel by at",
        "most ε/255 (the L∞ ball); clean acc: of the same images. FGSM: one step of ε; PGD-k: k",
        "steps of ε/4 from a random start; APGD-CE: 100 iterations (APGD-CE-k: k) of its own",
        "step-size schedule (AutoAttack's first attack); ×R: R restarts. Training time: wall time",
        "of the fit (validation and monitors included) on the machine that ran it; ≈: from file",
        "times (common.run_logs.fit_seconds), exact when the fit had a Timer callback.",
        "",
        *markdown(header, rows, "---|" + "---:|" * (len(header) - 1)),
    ]
    curves = {
        label: metric_by_epoch(Path(run_dir), "val/pgd_acc") for label, run_dir in cfg.runs.items()
    }
    curves = {label: points for label, points in curves.items() if points}
    figures = {}
    if curves:  # the catastrophic-overfitting check of the models that had the monitor
        lines += [
            "",
            f"Per-epoch PGD accuracy on the monitor's validation images ({', '.join(curves)}): "
            f"{PGD_CURVES} (a collapse to ~0 within an epoch = catastrophic overfitting).",
        ]
        figures[PGD_CURVES] = partial(
            plot_curves,
            curves,
            ylabel="val/pgd_acc (PGD-10 in the ε ball)",
            title="robust validation accuracy per epoch",
        )
    return Report("\n".join(lines) + "\n", files, figures)


#: ``--kind`` → the function that builds its report from the parsed options
KINDS: dict[str, Callable[[Namespace], Report]] = {
    "ood": ood_report,
    "adversarial": adversarial_report,
    "attacks": attacks_report,
    "robustness": robustness_report,
}


def main(argv: list[str] | None = None) -> str:
    parser = command_parser("python -m lab4 report", __doc__)
    parser.add_argument("--kind", type=Literal[tuple(KINDS)], default="ood")  # type: ignore[valid-type]
    parser.add_argument(
        "--runs", type=dict[str, str], required=True, help="model label → run folder"
    )
    parser.add_argument("--near_ood", type=str, default="imagenette", help="the OOD set of 'best'")
    parser.add_argument(
        "--classifier_free", type=list[str], default=["autoencoder"], help="ood: own-row detectors"
    )
    parser.add_argument(
        "--output", type=str | None, default=None,
        help="the table's file, figures beside it (none: print the table, write nothing)",
    )  # fmt: skip
    cfg = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = KINDS[cfg.kind](cfg)
    if cfg.output is None:
        sys.stdout.write(report.text)
        return report.text
    output = write_text_atomic(cfg.output, report.text)
    for name, source in report.files.items():
        copy_atomic(source, output.parent / name)
    for name, draw in report.figures.items():
        draw(output.parent / name)
    log.info("wrote %s and %d files beside it", output, len(report.files) + len(report.figures))
    return report.text
