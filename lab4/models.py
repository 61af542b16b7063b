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


def standardize_per_image(images: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``(x − mean) / sqrt(var + eps²)`` over each image's C×H×W values (``[N, C, H, W]`` in and
    out): what is left is the image's pattern, not its offset or scale. ``eps`` is tiny because
    input gradients are (≈1e-6 for confident predictions); it keeps a constant image finite."""
    flat = images.flatten(1)
    mean = flat.mean(dim=1).view(-1, 1, 1, 1)
    variance = flat.var(dim=1, correction=0).view(-1, 1, 1, 1)
    return (images - mean) / torch.sqrt(variance + eps * eps)


class JacobianAdaptor(nn.Module):
    """JARN's adaptor A: input gradients (Jacobians) → image-like maps in [-1, 1].

    Each Jacobian is standardised per image (:func:`standardize_per_image`: zero mean, unit
    variance; the official JARN code L2-normalises it, the same up to a constant factor), then a
    ``kernel_size`` convolution (1×1 in the paper: a learnt per-pixel colour mixing) and tanh.

    Args:
        channels: image channels (in and out).
        kernel_size: the convolution's size (odd; 1: the paper's).

    Example::

        adapted = JacobianAdaptor(3)(torch.randn(8, 3, 32, 32) * 1e-4)  # same shape, in [-1, 1]
    """

    def __init__(self, channels: int = 3, kernel_size: int = 1) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"JacobianAdaptor needs an odd kernel_size, got {kernel_size}")
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, jacobians: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(standardize_per_image(jacobians)))


class JacobianDiscriminator(nn.Module):
    """JARN's discriminator D: one logit per image, > 0 for "a real image", < 0 for "an adapted
    Jacobian".

    Every input is first standardised per image (:func:`standardize_per_image`; the official
    code L2-normalises both kinds of input), so D judges patterns, not brightness or range (real
    images lie in [0, 1], adapted Jacobians in [-1, 1]). Then per width a 4×4 stride-2
    convolution and LeakyReLU(0.2) (DCGAN's discriminator, without BatchNorm, so real and
    adapted batches do not mix through batch statistics), global average pooling and a linear
    layer. Any image size.

    Args:
        widths: channels of each stride-2 convolution.
        in_channels: image channels.

    Example::

        logits = JacobianDiscriminator((16, 32))(torch.rand(8, 3, 32, 32))   # [8]
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64), in_channels: int = 3) -> None:
        super().__init__()
        layers, channels = [], in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(standardize_per_image(images))).squeeze(1)
