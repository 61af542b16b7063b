"""Lab 4's own networks (plain ``nn.Module``s)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    """A convolutional autoencoder for [0, 1] images: stride-2 convolutions down, transposed
    convolutions up, a sigmoid at the end so reconstructions are images too.

    Args:
        channels: channels of the encoder stages (each halves the resolution).
        in_channels: image channels.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128), in_channels: int = 3) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        down, up = [], []
        for i in range(len(channels)):
            down += [nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), nn.BatchNorm2d(widths[i + 1])]
            down.append(nn.ReLU(inplace=True))
        for i in reversed(range(len(channels))):
            up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 4, 2, 1))
            if i > 0:
                up += [nn.BatchNorm2d(widths[i]), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*down)
        self.decoder = nn.Sequential(*up, nn.Sigmoid())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))


def reconstruction_error(autoencoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean squared reconstruction error per image."""
    return (autoencoder(images) - images).pow(2).flatten(1).mean(dim=1)
