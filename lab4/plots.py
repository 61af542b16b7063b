"""Lab 4's figures: attack sweeps and adversarial examples (matplotlib ``Figure`` objects, no
pyplot state, so they are safe in callbacks and threads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from common.plots import save_figure
from lab4.attacks import AttackResult

SWEEP_PANELS = {
    "success_rate": "success rate (correct before)",
    "robust_accuracy": "robust accuracy",
    "mean_iterations": "mean iterations to success",
    "confidence_drop": "true-class confidence drop",
}


def plot_attack_sweep(
    rows: Sequence[dict], path: str | Path, title: str = "", xlabel: str = "ε per step (/255)"
) -> Path:
    """The attack metrics vs ε (per step, or the radius of the L∞ ball), one line per attack."""
    fig = Figure(figsize=(3.4 * len(SWEEP_PANELS), 3.0))
    axes = fig.subplots(1, len(SWEEP_PANELS))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    for ax, (key, label) in zip(axes, SWEEP_PANELS.items(), strict=True):
        for name in attacks:
            points = [(r["epsilon"], r[key]) for r in rows if r["attack"] == name]
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_attack_examples(
    result: AttackResult,
    class_names: Sequence[str],
    chosen: Sequence[int],
    path: str | Path,
    title: str = "",
) -> Path:
    """Rows of original | perturbation (amplified to the full range) | adversarial, with the
    predicted class and its confidence, for the images ``chosen`` (positions in ``result``)."""
    fig = Figure(figsize=(5.4, 1.9 * len(chosen)))
    axes = fig.subplots(len(chosen), 3, squeeze=False)
    for row, i in enumerate(chosen):
        perturbation = result.adversarial[i] - result.images[i]
        scale = perturbation.abs().max().clamp_min(1e-12)
        amplified = f"perturbation ×{0.5 / scale:.0f}" if scale > 1e-6 else "no perturbation"
        panels = [
            (result.images[i], result.probabilities_before[i], "original"),
            (0.5 + 0.5 * perturbation / scale, None, amplified),
            (result.adversarial[i], result.probabilities_after[i], "adversarial"),
        ]
        for ax, (image, probabilities, name) in zip(axes[row], panels, strict=True):
            ax.imshow(image.permute(1, 2, 0).float().clamp(0, 1).cpu().numpy())
            ax.axis("off")
            if name == "original":
                name = f"original ({class_names[result.labels[i]]})"
            if probabilities is not None:
                confidence, predicted = probabilities.max(dim=0)
                name += f"\n{class_names[predicted]} {confidence:.2f}"
            ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_saliency_grid(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """A grid: the images ``[N, C, H, W]`` in the first row, then one row per model of its maps
    (``maps[label]``, like the images and in [0, 1]), the model's label on the left and each
    image's class name (``names``) above its column."""
    rows = [("image", images), *maps.items()]
    fig = Figure(figsize=(1.1 * len(images) + 1.2, 1.15 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), len(images), squeeze=False)
    for row, (label, pictures) in enumerate(rows):
        for column, picture in enumerate(pictures):
            ax = axes[row][column]
            ax.imshow(picture.permute(1, 2, 0).squeeze(-1).float().clamp(0, 1).cpu().numpy(),
                      cmap="gray", vmin=0, vmax=1)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(names[column], fontsize=8)
        axes[row][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
