"""Per-channel normalisation as the first layer of every network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for inputs in [0, 1] pixel space.

    Keeping normalisation inside the network means data, attacks, ODIN and CAM overlays all
    use one convention: images in [0, 1]. The statistics are buffers, saved in checkpoints.
    Give them here (e.g. a pretrained model's own statistics) or leave them unset and let
    :class:`common.classifier.ImageClassifier` fill in the training data's statistics.

    Example:
        >>> norm = Normalize(3, mean=[0.5] * 3, std=[0.25] * 3)
        >>> norm(torch.full((1, 3, 2, 2), 0.75)).unique()
        tensor([1.])
    """

    def __init__(
        self,
        channels: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.register_buffer("is_set", torch.tensor(False))
        if mean is not None or std is not None:
            self.set_statistics(mean, std)

    def set_statistics(self, mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        if mean is None or std is None or len(mean) != len(self.mean) or len(std) != len(self.std):
            raise ValueError(
                f"Normalize needs mean and std with {len(self.mean)} values, got {mean} and {std}"
            )
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))
        self.is_set.fill_(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean[:, None, None]) / self.std[:, None, None]

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


def find_normalize(model: nn.Module) -> Normalize:
    """The model's :class:`Normalize` layer; every network of this project has exactly one."""
    layers = [m for m in model.modules() if isinstance(m, Normalize)]
    if len(layers) != 1:
        raise ValueError(
            f"{type(model).__name__} has {len(layers)} Normalize layers; networks here take "
            "[0, 1] images and must start with exactly one common.models.Normalize"
        )
    return layers[0]
