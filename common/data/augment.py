"""Augmentation applied to whole batches on the device the model lives on."""

from __future__ import annotations

import torch
from torch import nn


class BatchAugment(nn.Module):
    """Random crop with zero padding, horizontal flip and Cutout for a batch (N, C, H, W) of
    floats.

    One random offset, flip and Cutout square per image, drawn from ``generator`` (or the global
    RNG) on the batch's device, each done for the whole batch at once: no Python loop over
    images. Cutout (DeVries & Taylor 2017, https://arxiv.org/abs/1708.04552) zeroes a
    ``cutout`` × ``cutout`` square centred anywhere in the image (clipped at the borders).

    Example:
        >>> augment = BatchAugment(crop_padding=4, horizontal_flip=True, cutout=8)
        >>> augment(torch.rand(8, 3, 32, 32)).shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(
        self, crop_padding: int = 0, horizontal_flip: bool = False, cutout: int = 0
    ) -> None:
        super().__init__()
        self.crop_padding = crop_padding
        self.horizontal_flip = horizontal_flip
        self.cutout = cutout

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.horizontal_flip or self.cutout > 0

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
        if self.cutout > 0:
            centre_y = torch.randint(0, h, (n, 1, 1), device=device, generator=generator)
            centre_x = torch.randint(0, w, (n, 1, 1), device=device, generator=generator)
            dy = torch.arange(h, device=device).view(1, h, 1) - centre_y  # (N, H, 1)
            dx = torch.arange(w, device=device).view(1, 1, w) - centre_x  # (N, 1, W)
            low, high = self.cutout // 2, (self.cutout + 1) // 2  # a square of side `cutout`
            inside = (dy >= -low) & (dy < high) & (dx >= -low) & (dx < high)  # (N, H, W)
            images = images.masked_fill(inside[:, None], 0.0)
        return images

    def extra_repr(self) -> str:
        return (
            f"crop_padding={self.crop_padding}, horizontal_flip={self.horizontal_flip}, "
            f"cutout={self.cutout}"
        )
