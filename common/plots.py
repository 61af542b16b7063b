"""Figures the labs save as PNG and log to W&B.

Built on :class:`matplotlib.figure.Figure` directly, not pyplot: importing this module leaves
matplotlib's backend (and a notebook's or a user's figures) alone, and a figure is freed with its
last reference instead of staying registered in pyplot's global list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from common.metrics import OODCurves


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` (folders created), at 120 dpi."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
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
    fig = Figure(figsize=(4.5 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
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
    return save_figure(fig, path)


def plot_curves(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    xlabel: str = "epoch",
    ylabel: str = "validation accuracy",
    title: str = "",
) -> Path:
    """All runs' learning curves on one plot (e.g. val/acc per epoch of every run of a sweep)."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
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
    return save_figure(fig, path)


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
    fig = Figure(figsize=(1.8 * 2 * cols, 2.1 * rows))
    axes = fig.subplots(rows, 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = divmod(i, cols)
        image = images[i].expand(3, -1, -1) if images.shape[1] == 1 else images[i]
        axes[row][2 * col].imshow(image.permute(1, 2, 0).float().cpu().numpy())
        axes[row][2 * col + 1].imshow(overlays[i].permute(1, 2, 0).float().cpu().numpy())
        axes[row][2 * col].set_title(titles[i], fontsize=6, loc="left")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_ood_scores(
    id_scores: torch.Tensor,
    ood_scores: Mapping[str, torch.Tensor],
    curves: Mapping[str, OODCurves],
    path: str | Path,
    title: str = "",
) -> Path:
    """Score histograms (ID vs each OOD set), and each set's ROC and precision-recall curves
    (ID positive) as :func:`common.metrics.ood_metrics_and_curves` computed them."""
    fig = Figure(figsize=(14, 3.8))
    hist, roc, pr = fig.subplots(1, 3)
    low = min([id_scores.min()] + [s.min() for s in ood_scores.values()]).item()
    high = max([id_scores.max()] + [s.max() for s in ood_scores.values()]).item()
    bins = torch.linspace(low, high, 51).tolist()
    hist.hist(id_scores.numpy(), bins=bins, alpha=0.5, density=True, label="ID test")
    for name, scores in ood_scores.items():
        hist.hist(scores.numpy(), bins=bins, alpha=0.5, density=True, label=name)
        roc.plot(curves[name].fpr.numpy(), curves[name].tpr.numpy(), label=name)
        pr.plot(curves[name].recall.numpy(), curves[name].precision.numpy(), label=name)
    hist.set_xlabel("score (higher = more in-distribution)")
    hist.legend(fontsize=7)
    roc.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    roc.set_xlabel("false positive rate (OOD accepted)")
    roc.set_ylabel("true positive rate (ID accepted)")
    pr.set_xlabel("recall (ID)")
    pr.set_ylabel("precision (ID)")
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_heatmap(
    values: torch.Tensor,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: str | Path,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
) -> Path:
    """A grid of numbers (e.g. AUROC over ODIN's T × ε), annotated, best cell outlined."""
    fig = Figure(figsize=(1.2 * len(column_labels) + 2, 0.7 * len(row_labels) + 1.5))
    ax = fig.subplots()
    image = ax.imshow(values.numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(column_labels)), column_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    best = divmod(int(values.argmax()), values.shape[1])
    for (i, j), value in zip(
        [(i, j) for i in range(values.shape[0]) for j in range(values.shape[1])],
        values.flatten().tolist(),
        strict=True,
    ):
        weight = "bold" if (i, j) == best else "normal"
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="w", fontweight=weight)
    ax.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, color="r", lw=2))
    fig.colorbar(image, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
