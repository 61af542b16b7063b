"""Per-layer gradient norms, weights and biases kept apart."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import grad_norm
from torch import nn

from common.plots import plot_gradient_norms


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers with a weight matrix or kernel (Linear, Conv), in input-to-output order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.ndim >= 2
    ]


class GradientNormMonitor(L.Callback):
    """Logs the gradient norm of every Linear/Conv layer, weight and bias separately.

    Every ``every_n_steps`` optimizer steps it logs ``grad_norm/weight/<layer>`` and
    ``grad_norm/bias/<layer>`` (Lightning's :func:`~lightning.pytorch.utilities.grad_norm`,
    after gradients are synchronised under DDP). At the end of fit it writes
    ``grad_norms.csv`` (mean norm per layer over the logged steps) and the figure
    ``grad_norms.png`` ("gradient norm vs layer depth") into the run folder and logs it to W&B.
    Normalisation layers are left out: their scales differ from the weight matrices' and would
    make the curve zig-zag. Observes only; never changes training.

    Args:
        every_n_steps: how often to measure.
        norm_type: the p of the p-norm.
    """

    def __init__(self, every_n_steps: int = 25, norm_type: float = 2.0) -> None:
        self.every_n_steps = every_n_steps
        self.norm_type = norm_type
        self.history: dict[tuple[str, str], list[float]] = defaultdict(list)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        norms = grad_norm(pl_module, self.norm_type)
        prefix = f"grad_{float(self.norm_type)}_norm/"
        logged = {}
        for layer, module in weighted_layers(pl_module):
            for kind in ("weight", "bias"):
                value = norms.get(f"{prefix}{layer}.{kind}")
                if value is not None and getattr(module, kind) is not None:
                    self.history[(layer, kind)].append(float(value))
                    logged[f"grad_norm/{kind}/{layer}"] = float(value)
        # straight to the loggers: `self.log` would be thinned again by `log_every_n_steps`
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=trainer.global_step)

    def state_dict(self) -> dict:
        """The measurements so far, saved in the checkpoint: a resumed fit writes the whole
        curve, not only what it measured after resuming."""
        return {
            "history": [[layer, kind, values] for (layer, kind), values in self.history.items()]
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = defaultdict(list)
        for layer, kind, values in state_dict["history"]:
            self.history[(layer, kind)] = list(values)

    def mean_norms(self) -> list[dict]:
        """Rows ``{depth, layer, kind, norm}`` with the mean norm over all logged steps."""
        # `history` keeps insertion order, which is the layers' input-to-output order.
        depth_of = {layer: i for i, layer in enumerate(dict.fromkeys(k[0] for k in self.history))}
        return [
            {"depth": depth_of[layer], "layer": layer, "kind": kind, "norm": sum(v) / len(v)}
            for (layer, kind), v in self.history.items()
        ]

    def on_fit_end(self, trainer, pl_module) -> None:
        # every process asks for the run folder (under DDP the question is collective)
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if self.history and trainer.is_global_zero:
            self._write(trainer, pl_module, run_dir)

    def _write(self, trainer, pl_module, run_dir: Path) -> None:
        """``grad_norms.csv`` and the figure into the run folder, the figure to W&B."""
        rows = self.mean_norms()
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "grad_norms.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["depth", "layer", "kind", "norm"])
            writer.writeheader()
            writer.writerows(rows)
        series = {
            kind: [(r["depth"], r["norm"]) for r in rows if r["kind"] == kind]
            for kind in ("weight", "bias")
        }
        name = type(getattr(pl_module, "model", pl_module)).__name__
        path = plot_gradient_norms({name: series}, run_dir / "grad_norms.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="grad_norms", images=[str(path)])
