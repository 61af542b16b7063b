"""What each ingredient of a training recipe is worth, from finished `fit` runs.

For every run folder (a ``python -m lab1 fit`` of configs/lab1/resnet20_cifar10.yaml, possibly
with one ingredient switched off on the command line) it reads the validation curve
(``version_*/metrics.csv``: epochs to reach 85 % and 90 % validation accuracy) and evaluates on
the test split, in fp32:

- the best-validation checkpoint (``best.ckpt``; with the EMA callback it holds the averaged
  weights), with and without flip test-time augmentation, and
- the raw weights at the end of training (``last.ckpt``'s ``current_model_state``, saved beside
  the averaged ones by Lightning's weight-averaging callback), with and without flip TTA,

so one run shows what EMA and TTA add, and runs that differ by one ingredient show the rest.

    python benchmarks/recipe_ablation.py "full recipe=runs/lab1/resnet20_cifar10" \\
        "no Cutout=runs/lab1/recipe/no_cutout" [--output table.md]
"""

from __future__ import annotations

import argparse
import csv
import importlib
from pathlib import Path

import torch
import yaml
from torch import nn

from common.checkpoints import read_checkpoint
from common.data import CIFAR10DataModule


def build_network(run_dir: Path) -> nn.Module:
    """The network of a run, from the ``config.yaml`` its ``fit`` saved."""
    config = sorted(run_dir.glob("**/config.yaml"), key=lambda p: p.stat().st_mtime)[-1]
    spec = yaml.safe_load(config.read_text())["model"]["init_args"]["model"]
    module, name = spec["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**spec.get("init_args", {}))


def load(network: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    network.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    )
    return network.eval()


@torch.inference_mode()
def test_accuracy(network: nn.Module, data: CIFAR10DataModule, flip: bool) -> float:
    dataset, correct = data.splits["test"], 0
    batches = zip(data.preprocessed_batches(dataset.images, "cpu"),
                  dataset.targets.split(data.batch_size), strict=True)  # fmt: skip
    for images, targets in batches:
        logits = network(images)
        if flip:
            logits = logits + network(images.flip(-1))
        correct += (logits.argmax(dim=1) == targets).sum().item()
    return correct / len(dataset)


def epochs_to(run_dir: Path, level: float) -> str:
    """The first epoch (1-based) whose validation accuracy reaches ``level``."""
    for path in sorted(run_dir.glob("version_*/metrics.csv")):
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if r.get("val/acc")]
        for row in rows:
            if float(row["val/acc"]) >= level:
                return str(int(row["epoch"]) + 1)
    return "not reached"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="label=run_dir")
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    data = CIFAR10DataModule(data_dir="data", batch_size=500, download=False)
    data.prepare_data()
    data.setup("test")
    lines = [
        "| run | best val acc | epochs to 85 % / 90 % val | test: best ckpt | + flip TTA | "
        "raw last weights | + flip TTA |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, folder in (run.split("=", 1) for run in args.runs):
        run_dir = Path(folder)
        best = read_checkpoint(run_dir / "checkpoints" / "best.ckpt")
        last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
        best_net = load(build_network(run_dir), best["state_dict"])
        raw = last.get("current_model_state", last["state_dict"])  # no EMA: the weights
        raw_net = load(build_network(run_dir), raw)
        monitor = next(v for k, v in best["callbacks"].items() if "val/acc" in k)
        cells = [
            f"{float(monitor['best_model_score']):.4f}",
            f"{epochs_to(run_dir, 0.85)} / {epochs_to(run_dir, 0.90)}",
            *(
                f"{test_accuracy(net, data, flip):.4f}"
                for net in (best_net, raw_net)
                for flip in (False, True)
            ),  # fmt: skip
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        Path(args.output).write_text(table)
    return table


if __name__ == "__main__":
    main()
