"""``python -m lab4 attack``: an ε sweep of FGSM and iterative FGSM (untargeted or targeted).

For every ε (in 1/255 units, per step) and attack, ``num_images`` test images (a seeded random
choice) are attacked in batches and :func:`lab4.attacks.attack_metrics` computed. Each run writes
``<output_dir>/<label>.json``, a figure of the metrics vs ε, and example grids (original |
amplified perturbation | adversarial); ``<output_dir>/attacks.md`` is rebuilt from every json in
the folder, so runs on several models make one table. Figures and metrics go to W&B too.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import nn

from common.checkpoints import load_classifier_checkpoint
from common.data import CIFAR10DataModule
from common.models import find_normalize
from common.sweep import slugify
from lab4.attacks import attack_metrics
from lab4.plots import plot_attack_examples, plot_attack_sweep
from lab4.robustness import attack_test_images

log = logging.getLogger(__name__)

COLUMNS = ("success_rate", "mean_iterations", "confidence_drop", "robust_accuracy")


def write_table(output_dir: Path) -> Path:
    """``attacks.md`` from every run's json in ``output_dir``."""
    lines = [
        "Success rate over images classified correctly before the attack; mean iterations over",
        "successes; confidence drop = mean fall of the true-class probability; robust accuracy",
        "over all images. ε per step in 1/255.",
        "",
        "| model | attack | target | ε | clean acc | success rate | mean iters | conf. drop | "
        "robust acc |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path in sorted(output_dir.glob("*.json")):
        run = json.loads(path.read_text())
        for row in run["rows"]:
            cells = [f"{row[c]:.3f}" if not math.isnan(row[c]) else "—" for c in COLUMNS]
            lines.append(
                f"| {run['label']} | {row['attack']} | {run['target'] or '—'} | "
                f"{row['epsilon']:g} | {row['clean_accuracy']:.3f} | " + " | ".join(cells) + " |"
            )
    table = output_dir / "attacks.md"
    table.write_text("\n".join(lines) + "\n")
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(prog="python -m lab4 attack", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=nn.Module, required=True)
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a fit checkpoint")
    parser.add_argument("--label", type=str, required=True, help="the model's name in the table")
    parser.add_argument("--data", type=CIFAR10DataModule, required=True)
    parser.add_argument("--num_images", type=int, default=1000)
    parser.add_argument("--epsilons", type=list[float], default=[0.5, 1, 2, 4, 8], help="/255")
    parser.add_argument("--attacks", type=list[Literal["fgsm", "iterative", "pgd"]])
    parser.set_defaults(attacks=["fgsm", "iterative"])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument(
        "--budget", type=float | None, default=None, help="L∞ budget in steps (None: none)"
    )
    parser.add_argument("--target", type=str | None, default=None, help="a class name, e.g. dog")
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--output_dir", type=str, default="results/lab4/attacks")
    parser.add_argument("--wandb", type=bool, default=True, help="log to W&B (offline w/o key)")
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data, model = cfg.data, cfg.model.eval()
    target = None
    if cfg.target is not None:
        if cfg.target not in data.class_names:
            raise SystemExit(
                f"error: unknown target class {cfg.target!r}; choose among {data.class_names}"
            )
        target = data.class_names.index(cfg.target)
    if cfg.checkpoint:
        load_classifier_checkpoint(model, cfg.checkpoint)
    normalize = find_normalize(model)
    if not normalize.is_set:  # as ImageClassifier does: the data's statistics
        normalize.set_statistics(*data.normalization)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    data.prepare_data()
    data.setup("test")
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    slug = slugify(cfg.label)
    slug += f"_{cfg.target}" if cfg.target else ""

    rows, examples = [], {}
    for name in cfg.attacks:
        for epsilon in cfg.epsilons:
            start = time.perf_counter()
            step = epsilon / 255
            budget = None if cfg.budget is None else cfg.budget * step
            result = attack_test_images(
                model, data, name, step, cfg.num_images, cfg.iterations, budget, target, device
            )
            row = {"attack": name, "epsilon": epsilon, **attack_metrics(result)}
            row["seconds"] = time.perf_counter() - start
            log.info(
                "%s ε=%g/255: %s",
                name,
                epsilon,
                {k: round(v, 4) for k, v in row.items() if isinstance(v, float)},
            )
            rows.append(row)
            examples[(name, epsilon)] = result
    run = {"label": cfg.label, "target": cfg.target, "rows": rows, "num_images": cfg.num_images}
    (output_dir / f"{slug}.json").write_text(json.dumps(run, indent=1))
    table = write_table(output_dir)
    title = f"{cfg.label}: " + (f"targeted → {cfg.target}" if cfg.target else "untargeted")
    figures = [plot_attack_sweep(rows, output_dir / f"{slug}_sweep.png", title=title)]
    name = cfg.attacks[-1]
    epsilon = cfg.epsilons[len(cfg.epsilons) // 2]
    figures.append(
        plot_attack_examples(
            examples[(name, epsilon)],
            data.class_names,
            cfg.examples,
            output_dir / f"{slug}_examples.png",
            title=f"{title}, {name} ε={epsilon:g}/255 per step",
        )
    )
    if cfg.wandb:
        import wandb

        with wandb.init(
            project="dla-labs", job_type="attack", name=slug, dir="runs/lab4", config=run
        ) as wb:
            wb.log(
                {
                    "attacks": wandb.Table(
                        columns=list(rows[0]), data=[list(r.values()) for r in rows]
                    )
                }
            )
            wb.log({"figures": [wandb.Image(str(f)) for f in figures]})
    log.info("wrote %s and %s", table, ", ".join(map(str, figures)))
    return run
