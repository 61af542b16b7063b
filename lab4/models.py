"""Lab 4's own networks (plain ``nn.Module``s)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from common.models import Normalize


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


class SimpleCNN(nn.Module):
    """The lab's custom CNN: stages of two 3×3 conv-BN-ReLU layers and a 2×2 max-pool, then
    global average pooling and a linear layer (so CAM, features and detectors all apply).

    Args:
        widths: channels of each stage.
        num_classes: outputs.
        in_channels: image channels.
        mean, std: normalisation statistics (``None``: taken from the data by the classifier).
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        stages, channels = [], in_channels
        for width in widths:
            layers = []
            for i in range(2):
                layers += [
                    nn.Conv2d(channels if i == 0 else width, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            channels = width
        self.features = nn.Sequential(Normalize(in_channels, mean, std), *stages)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))
