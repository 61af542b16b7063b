"""CIFAR-style ResNets (He et al., "Deep Residual Learning for Image Recognition", 2016,
https://arxiv.org/abs/1512.03385, section 4.2) whose plain and residual versions differ only by
the skip connections.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from common.models.normalize import Normalize

Shortcut = Literal["projection", "zero_pad"]


class ZeroPadShortcut(nn.Module):
    """The paper's parameter-free "option A": subsample by the stride, zero-pad new channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return nn.functional.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers; ``relu(f(x) + shortcut(x))`` with a skip, ``relu(f(x))`` without.

    Args:
        in_channels, out_channels: channels in and out.
        stride: stride of the first convolution (2 halves the resolution).
        skip: add the shortcut.
        shortcut: ``"projection"`` (1×1 conv + BN, "option B") or ``"zero_pad"`` ("option A")
            when the shape changes; the identity otherwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        skip: bool = True,
        shortcut: Shortcut = "projection",
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or in_channels != out_channels):
            if shortcut == "projection":
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
            else:
                self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + self.shortcut(x)
        return torch.relu(out)


class CifarResNet(nn.Module):
    """3×3 stem, stages of :class:`BasicBlock`\\ s (resolution halved at each new stage), global
    average pooling, linear classifier.

    ``stage_depths=(3, 3, 3)`` is ResNet-20, ``(5, 5, 5)`` ResNet-32, ``(9, 9, 9)`` ResNet-56;
    ``skip=False`` gives the "plain" network of the paper with the same layers.

    Args:
        stage_depths: blocks per stage.
        widths: channels per stage.
        num_classes: outputs.
        skip: residual connections on or off.
        shortcut: see :class:`BasicBlock`.
        in_channels: image channels.
        mean, std: input statistics for the :class:`Normalize` layer (None: from the data).

    ``features(x)`` gives the last feature maps (N, widths[-1], H/2^(k-1), W/2^(k-1)), which
    ``classifier`` pools and maps to logits — the structure Class Activation Maps need.

    Example:
        >>> CifarResNet((3, 3, 3))(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        stage_depths: Sequence[int] = (3, 3, 3),
        widths: Sequence[int] = (16, 32, 64),
        num_classes: int = 10,
        skip: bool = True,
        shortcut: Shortcut = "projection",
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(stage_depths) != len(widths):
            raise ValueError(f"{len(stage_depths)} stage depths for {len(widths)} widths")
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            normalize=Normalize(in_channels, mean, std),
            conv1=nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            bn1=nn.BatchNorm2d(widths[0]),
            relu=nn.ReLU(),
        )
        channels = widths[0]
        for stage, (depth, width) in enumerate(zip(stage_depths, widths, strict=True)):
            blocks = []
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, width, stride, skip, shortcut))
                channels = width
            layers[f"layer{stage + 1}"] = nn.Sequential(*blocks)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                linear=nn.Linear(channels, num_classes),
            )
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))
