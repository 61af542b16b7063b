"""Multilayer perceptrons whose plain and residual versions differ only by the skip connection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import torch
from torch import nn

from common.models import Normalize

NormKind = Literal["batch", "layer"] | None


def _norm_layers(kind: NormKind, features: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm1d(features)]
    if kind == "layer":
        return [nn.LayerNorm(features)]
    return []


class MLPBlock(nn.Module):
    """``x + f(x)`` with a skip, ``f(x)`` without; ``f`` is ``[norm →] ReLU → Linear``, repeated.

    Pre-activation order (He et al., "Identity Mappings in Deep Residual Networks", 2016,
    https://arxiv.org/abs/1603.05027): nothing is applied after the addition, so the skip path
    stays an identity from input to output and very deep stacks still train. Without the skip,
    a stack of these blocks is an ordinary ``Linear → ReLU → Linear → …`` MLP.

    Args:
        sizes: layer sizes, e.g. ``[16, 16, 16]`` for two Linear layers of width 16.
        norm: optional normalisation before each ReLU (``"batch"`` or ``"layer"``).
        skip: add the block's input to its output (needs ``sizes[0] == sizes[-1]``).
    """

    def __init__(self, sizes: Sequence[int], norm: NormKind = None, skip: bool = False) -> None:
        super().__init__()
        if skip and sizes[0] != sizes[-1]:
            raise ValueError(f"a residual block needs equal input and output sizes, got {sizes}")
        layers: list[nn.Module] = []
        for n_in, n_out in pairwise(sizes):
            layers += [*_norm_layers(norm, n_in), nn.ReLU(), nn.Linear(n_in, n_out)]
        self.body = nn.Sequential(*layers)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.skip else out


class MLP(nn.Module):
    """An MLP on flattened images: stem ``Linear(C·H·W → width)``, ``depth`` hidden layers, head.

    Layer order: ``Linear → (ReLU → Linear) × depth → ReLU → classifier``; the hidden layers
    come in pre-activation blocks (:class:`MLPBlock`).

    The hidden layers are grouped into blocks of ``layers_per_block`` Linear layers; with
    ``skip=True`` each block gets a residual connection, and that is the *only* difference
    between a plain and a residual network of the same shape (same parameters, same init).

    Args:
        input_shape: (C, H, W) of the images.
        num_classes: outputs of the classifier.
        width: hidden width (ignored when ``widths`` is given).
        depth: number of hidden Linear layers after the stem (ignored when ``widths`` is given).
        widths: explicit sizes ``[stem, hidden_1, …, hidden_depth]`` for a plain MLP.
        layers_per_block: Linear layers per block (1 or 2); must divide ``depth``.
        norm: ``None``, ``"batch"`` or ``"layer"`` normalisation after each hidden Linear.
        skip: residual connection around each block.
        mean, std: input statistics for the :class:`Normalize` layer (None: taken from the data).

    ``features(x)`` gives the (N, width) representation, ``classifier`` maps it to logits.

    Example:
        >>> MLP((1, 28, 28), 10, width=16, depth=8)(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        width: int = 16,
        depth: int = 2,
        widths: Sequence[int] | None = None,
        layers_per_block: int = 1,
        norm: NormKind = None,
        skip: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        sizes = list(widths) if widths is not None else [width] * (depth + 1)
        hidden_layers = len(sizes) - 1
        if hidden_layers % layers_per_block:
            raise ValueError(
                f"depth={hidden_layers} is not a multiple of layers_per_block={layers_per_block}"
            )
        blocks = [
            MLPBlock(sizes[i : i + layers_per_block + 1], norm, skip)
            for i in range(0, hidden_layers, layers_per_block)
        ]
        self.features = nn.Sequential(
            Normalize(input_shape[0], mean, std),
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), sizes[0]),
            *blocks,
            *_norm_layers(norm, sizes[-1]),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(sizes[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


class ResidualMLP(MLP):
    """:class:`MLP` with ``skip=True`` and, by default, two Linear layers per residual block."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        width: int = 16,
        depth: int = 2,
        layers_per_block: int = 2,
        norm: NormKind = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            input_shape, num_classes, width, depth, None, layers_per_block, norm, True, mean, std
        )
