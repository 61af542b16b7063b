"""Augmentation applied to whole batches on the device the model lives on."""

from __future__ import annotations

import torch
from torch import nn


class BatchAugment(nn.Module):
    """Random crop with zero padding and horizontal flip for a batch (N, C, H, W) of floats.

    One random offset and flip per image, drawn from ``generator`` (or the global RNG) on the
    batch's device, done with a single gather: no Python loop over images.

    Example:
        >>> augment = BatchAugment(crop_padding=4, horizontal_flip=True)
        >>> augment(torch.rand(8, 3, 32, 32)).shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(self, crop_padding: int = 0, horizontal_flip: bool = False) -> None:
        super().__init__()
        self.crop_padding = crop_padding
        self.horizontal_flip = horizontal_flip

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.horizontal_flip

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        n, _, h, w = images.shape
        device = images.device
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = nn.functional.pad(images, (p, p, p, p))
            top = torch.randint(0, 2 * p + 1, (n, 1, 1), device=device, generator=generator)
            left = torch.randint(0, 2 * p + 1, (n, 1, 1), device=device, generator=generator)
            rows = (top + torch.arange(h, device=device).view(1, h, 1)).expand(n, h, w)
            cols = (left + torch.arange(w, device=device).view(1, 1, w)).expand(n, h, w)
            flat_index = (rows * (w + 2 * p) + cols).flatten(1)  # (N, H*W) into the padded plane
            flat = padded.flatten(2)  # (N, C, (H+2p)*(W+2p))
            index = flat_index[:, None, :].expand(-1, flat.shape[1], -1)
            images = flat.gather(2, index).view_as(images)
        if self.horizontal_flip:
            flip = torch.rand(n, 1, 1, 1, device=device, generator=generator) < 0.5
            images = torch.where(flip, images.flip(-1), images)
        return images

    def extra_repr(self) -> str:
        return f"crop_padding={self.crop_padding}, horizontal_flip={self.horizontal_flip}"
