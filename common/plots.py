"""Figures the labs save as PNG and log to W&B."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_gradient_norms(
    panels: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Gradient norm vs layer depth, one panel per model, one line per series.

    ``panels[model][series]`` is a list of ``(layer_depth, norm)`` points, e.g. series
    ``"weight"`` and ``"bias"`` kept apart (mixing them makes the curve zig-zag), or one series
    per network depth. The y axis is logarithmic and shared, so panels compare directly.
    """
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 3.6), sharey=True, squeeze=False
    )
    for ax, (model, series) in zip(axes[0], panels.items(), strict=True):
        colors: dict[str, str] = {}
        for label, points in series.items():
            # "depth=8 weight" and "depth=8 bias" share a colour; biases are dashed
            group = label.rsplit(" ", 1)[0] if " " in label else label
            color = colors.setdefault(group, f"C{len(colors) % 10}")
            depths, norms = zip(*points, strict=True) if points else ((), ())
            style = "--" if label.endswith("bias") else "-"
            ax.plot(depths, norms, style, color=color, marker="o", markersize=3, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("layer depth (input → output)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mean gradient L2 norm")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_curves(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    xlabel: str = "epoch",
    ylabel: str = "validation accuracy",
    title: str = "",
) -> Path:
    """All runs' learning curves on one plot (e.g. val/acc per epoch of every run of a sweep)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in curves.items():
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_cam_grid(
    images: torch.Tensor,
    overlays: torch.Tensor,
    titles: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Image and CAM overlay side by side, one pair per image, labelled with ``titles``."""
    n = len(images)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.6 * 2 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = divmod(i, cols)
        image = images[i].expand(3, -1, -1) if images.shape[1] == 1 else images[i]
        axes[row][2 * col].imshow(image.permute(1, 2, 0).float().cpu().numpy())
        axes[row][2 * col + 1].imshow(overlays[i].permute(1, 2, 0).float().cpu().numpy())
        axes[row][2 * col].set_title(titles[i], fontsize=7, loc="left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
