"""``python -m lab4 report``: one table over several ``python -m lab4 test`` runs.

``--runs`` maps each model's label (its name in the table) to its run folder
(``trainer.default_root_dir``); each kind reads the newest ``version_*`` files there:

- ``ood`` (``results/lab4/ood.md``): ``ood_metrics.csv`` (:class:`common.callbacks.OODEvaluation`).
  Rows are model × detector, columns the OOD sets (AUROC / AUPR-In / AUPR-Out / FPR@95), with the
  model's ID test accuracy; detectors that use no classifier (the autoencoder) get one row of
  their own. The figures of MSP and of each model's best near-OOD detector go beside the table.
- ``adversarial`` (``results/lab4/adversarial_training.md``): one row per model from
  ``robustness.csv`` (:class:`lab4.robustness.RobustnessEvaluation`) and ``ood_metrics.csv``:
  clean accuracy, robust accuracy and success rate per attack and ε, near-OOD AUROC. A model
  without a test run yet is listed as "not run".
- ``attacks`` (``results/lab4/attacks/attacks.md``): the attack sweeps
  (``configs/lab4/attacks/``), each model's newest ``robustness.json`` per target, untargeted
  first, one row per attack × ε; each sweep's json and figures go beside the table.

Without ``--output`` the table is printed and nothing is written. With it, every run is read
first (a missing one stops the report in one line, before anything is written), then the table
is written atomically and the files beside it copied.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jsonargparse import Namespace

from common.commands import command_parser, copy_atomic, write_text_atomic
from common.sweep import slugify
from lab4.attacks import REPORTED_METRICS

log = logging.getLogger(__name__)

OOD_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


@dataclass
class Report:
    """A table and the files to copy beside it (name beside the table → source)."""

    text: str
    files: dict[str, Path] = field(default_factory=dict)


def versions(run_dir: Path, name: str) -> list[Path]:
    """Every ``version_*/<name>`` under ``run_dir``, oldest first; an error if there is none."""
    found = sorted(run_dir.glob(f"version_*/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no {name} under {run_dir}; run `python -m lab4 test` with its config first"
        )
    return found


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def markdown(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A markdown table; ``align`` is the separator row without its leading ``|``."""
    lines = ["| " + " | ".join(header) + " |", "|" + align]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def ood_report(cfg: Namespace) -> Report:
    """Model × detector rows, OOD-set columns."""
    table: dict[tuple[str, str], dict[str, dict]] = {}  # (model, detector) → OOD set → row
    accuracy, ood_sets, files = {}, [], {}
    for label, run_dir in cfg.runs.items():
        path = versions(Path(run_dir), "ood_metrics.csv")[-1]
        for row in read_csv(path):
            model = row["detector"] if row["detector"] in cfg.classifier_free else label
            table.setdefault((model, row["detector"]), {})[row["ood_set"]] = row
            accuracy.setdefault(model, "—" if model != label else row["id_accuracy"])
            if row["ood_set"] not in ood_sets:
                ood_sets.append(row["ood_set"])
        near = {
            d: rows[cfg.near_ood]
            for (m, d), rows in table.items()
            if m == label and cfg.near_ood in rows
        }
        if near:
            best = max(near, key=lambda d: float(near[d]["auroc"]))
            for detector in dict.fromkeys(["msp", best]):
                figure = path.parent / f"ood_{detector}.png"
                if figure.is_file():
                    files[f"ood_{slugify(label)}_{detector}.png"] = figure
    rows = []
    for (model, detector), cells in table.items():
        acc = accuracy[model]
        rows.append(
            [model, acc if acc == "—" else f"{float(acc):.4f}", detector]
            + [
                " / ".join(f"{float(cells[s][m]):.3f}" for m in OOD_METRICS) if s in cells else "—"
                for s in ood_sets
            ]
        )
    lines = [
        "Cells: AUROC ↑ / AUPR-In ↑ / AUPR-Out ↑ / FPR@95 ↓ (ID = CIFAR-10 test, positive class).",
        "",
        *markdown(
            ["model", "ID acc", "detector", *ood_sets],
            rows,
            "---|---:|---|" + "---|" * len(ood_sets),
        ),
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


def sweeps(run_dir: Path) -> dict[str | None, Path]:
    """The newest ``robustness.json`` of each target in a model's run folder, untargeted first."""
    by_target = {
        json.loads(p.read_text())["target"]: p for p in versions(run_dir, "robustness.json")
    }
    return dict(sorted(by_target.items(), key=lambda item: (item[0] is not None, item[0] or "")))


def attacks_report(cfg: Namespace) -> Report:
    """Every model's attack sweeps, one row per attack × ε."""
    rows, files = [], {}
    for label, run_dir in cfg.runs.items():
        for target, path in sweeps(Path(run_dir)).items():
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
    ]
    return Report("\n".join(lines) + "\n", files)


#: ``--kind`` → the function that builds its report from the parsed options
KINDS: dict[str, Callable[[Namespace], Report]] = {
    "ood": ood_report,
    "adversarial": adversarial_report,
    "attacks": attacks_report,
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
    log.info("wrote %s and %d files beside it", output, len(report.files))
    return report.text
