"""``python -m lab4 report``: one table over several ``python -m lab4 test`` runs.

``--kind ood`` (``results/lab4/ood.md``): each run folder's newest ``version_*/ood_metrics.csv``
(:class:`common.callbacks.OODEvaluation`). Rows are model × detector, columns the OOD sets
(AUROC / AUPR-In / AUPR-Out / FPR@95), with the model's ID test accuracy. Detectors that do not
use the classifier (the autoencoder) get one row of their own. The histogram/ROC/PR figures of
MSP and of each model's best near-OOD detector are copied beside the table.

``--kind adversarial`` (``results/lab4/adversarial_training.md``): one row per model, from
``robustness.csv`` (:class:`lab4.robustness.RobustnessEvaluation`) and ``ood_metrics.csv``:
clean accuracy, robust accuracy and success rate per attack and ε, near-OOD AUROC.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser

from common.sweep import slugify

log = logging.getLogger(__name__)

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


def newest_metrics(run_dir: Path, name: str = "ood_metrics.csv") -> Path:
    found = sorted(run_dir.glob(f"version_*/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no {name} under {run_dir}; run `python -m lab4 test` with its config first"
        )
    return found[-1]


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def adversarial_table(runs: dict[str, str], near_ood: str) -> str:
    """Robustness and near-OOD detection of each model, one row each."""
    header = ["model", "clean acc"]
    rows, missing = [], []
    for label, run_dir in runs.items():
        if not list(Path(run_dir).glob("version_*/robustness.csv")):
            log.warning("%s: no test run in %s yet; listed as not run", label, run_dir)
            missing.append(label)
            continue
        ood_path = newest_metrics(Path(run_dir))
        robustness = read_csv(newest_metrics(Path(run_dir), "robustness.csv"))
        ood = [r for r in read_csv(ood_path) if r["ood_set"] == near_ood]
        if not header[2:]:
            header += [
                f"{r['attack']} ε={float(r['epsilon']):g} robust acc / success" for r in robustness
            ]
            header += [f"{near_ood} AUROC msp", f"{near_ood} AUROC best"]
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
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ] + ["| " + " | ".join(row) + " |" for row in rows]
    lines += [f"| {label} | not run |" + " |" * (len(header) - 2) for label in missing]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = ArgumentParser(prog="python -m lab4 report", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--kind", type=Literal["ood", "adversarial"], default="ood")
    parser.add_argument("--runs", type=dict[str, str], required=True, help="model label → run dir")
    parser.add_argument("--near_ood", type=str, default="imagenette", help="set for 'best'")
    parser.add_argument("--classifier_free", type=list[str], default=["autoencoder"])
    parser.add_argument("--output", type=str, default="results/lab4/ood.md")
    cfg = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if cfg.kind == "adversarial":
        output.write_text(text := adversarial_table(cfg.runs, cfg.near_ood))
        log.info("wrote %s", output)
        return text

    table: dict[tuple[str, str], dict[str, dict]] = {}  # (model, detector) → OOD set → row
    accuracy, ood_sets = {}, []
    for label, run_dir in cfg.runs.items():
        path = newest_metrics(Path(run_dir))
        with open(path) as f:
            for row in csv.DictReader(f):
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
                    shutil.copy(figure, output.parent / f"ood_{slugify(label)}_{detector}.png")

    lines = [
        "Cells: AUROC ↑ / AUPR-In ↑ / AUPR-Out ↑ / FPR@95 ↓ (ID = CIFAR-10 test, positive class).",
        "",
        "| model | ID acc | detector | " + " | ".join(ood_sets) + " |",
        "|---|---:|---|" + "---|" * len(ood_sets),
    ]
    for (model, detector), rows in table.items():
        acc = accuracy[model]
        acc = acc if acc == "—" else f"{float(acc):.4f}"
        cells = [
            " / ".join(f"{float(rows[s][m]):.3f}" for m in METRICS) if s in rows else "—"
            for s in ood_sets
        ]
        lines.append(f"| {model} | {acc} | {detector} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    output.write_text(text)
    log.info("wrote %s", output)
    return text
