"""Class Activation Maps (Zhou et al., "Learning Deep Features for Discriminative Localization",
CVPR 2016, https://arxiv.org/abs/1512.04150).

For a network that ends in global average pooling → linear, the map of class c is
``M_c = Σ_k w_ck · A_k`` over the last feature maps ``A_k`` (``w`` the linear layer's weights).
Because pooling is linear, the spatial mean of ``M_c`` plus ``b_c`` is exactly the logit of c:
the map says where the evidence for c lies. Networks here expose ``features`` (→ ``A``) and
``classifier`` (pool → flatten → linear).
"""

from __future__ import annotations

import torch
from matplotlib import colormaps
from torch import nn


def _head(model: nn.Module) -> nn.Linear:
    classifier = getattr(model, "classifier", None)
    pools = [m for m in classifier or [] if isinstance(m, nn.AdaptiveAvgPool2d | nn.AvgPool2d)]
    if classifier is None or not pools or not isinstance(classifier[-1], nn.Linear):
        raise ValueError(
            f"CAM needs `features` then a `classifier` with global average pooling and a final "
            f"nn.Linear; {type(model).__name__} has none"
        )
    return classifier[-1]


@torch.no_grad()
def class_activation_maps(
    model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CAMs at feature-map resolution and the logits, for a batch of [0, 1] images.

    Args:
        model: a network with ``features`` and a GAP → linear ``classifier``.
        images: (N, C, H, W) in [0, 1].
        classes: (N,) the class of each map; the predicted class when omitted.

    Returns:
        ``cams`` (N, h, w), not normalised (mean over h, w = logit − bias), and ``logits``.
    """
    head = _head(model)
    feature_maps = model.features(images).float()
    logits = model.classifier(feature_maps)
    if classes is None:
        classes = logits.argmax(dim=1)
    weights = head.weight.float()[classes]  # (N, K)
    cams = torch.einsum("nkhw,nk->nhw", feature_maps, weights)
    return cams, logits


def upsample(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling to the image size, then min-max scaling of each map to [0, 1]."""
    maps = nn.functional.interpolate(cams[:, None], size=size, mode="bilinear", align_corners=False)
    low = maps.amin(dim=(2, 3), keepdim=True)
    high = maps.amax(dim=(2, 3), keepdim=True)
    return ((maps - low) / (high - low).clamp_min(1e-8))[:, 0]


def overlay(images: torch.Tensor, saliency: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Blend a jet-coloured saliency map (N, H, W in [0, 1]) over images (N, 3, H, W in [0, 1])."""
    lut = torch.as_tensor(colormaps["jet"](range(256))[:, :3], dtype=images.dtype)
    colours = lut.to(images.device)[(saliency * 255).round().long()].permute(0, 3, 1, 2)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return ((1 - alpha) * images + alpha * colours).clamp(0, 1)
