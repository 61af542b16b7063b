"""Class Activation Maps (Zhou et al., "Learning Deep Features for Discriminative Localization",
CVPR 2016, https://arxiv.org/abs/1512.04150).

For a network that ends in global average pooling → linear, the map of class c is
``M_c = Σ_k w_ck · A_k`` over the last feature maps ``A_k`` (``w`` the linear layer's weights).
Because pooling is linear, the spatial mean of ``M_c`` plus ``b_c`` is exactly the logit of c:
the map says where the evidence for c lies. Networks here expose ``features`` (→ ``A``) and
``classifier`` (pool → flatten → linear).

Grad-CAM (Selvaraju et al., ICCV 2017, https://arxiv.org/abs/1610.02391) needs no such head: it
weighs ``A_k`` by the spatial mean of ∂logit_c/∂A_k and keeps the positive part. For a GAP →
linear head that mean is ``w_ck / (h·w)``, so Grad-CAM = ReLU(CAM) / (h·w) there.
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


def grad_cam(
    model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM maps (N, h, w) over ``model.features``' output, and the logits.

    Works for any ``classifier`` on top of ``features``, also inside ``torch.no_grad`` or
    ``torch.inference_mode`` (as in Lightning's test loop); parameters get no gradient.
    """
    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            feature_maps = model.features(images)
        # a clone made outside inference mode is an ordinary tensor that autograd can track
        feature_maps = feature_maps.float().clone().requires_grad_(True)
        logits = model.classifier(feature_maps)
        if classes is None:
            classes = logits.argmax(dim=1)
        chosen = logits.gather(1, classes[:, None]).sum()
        (gradients,) = torch.autograd.grad(chosen, feature_maps)
    weights = gradients.mean(dim=(2, 3))  # (N, K)
    cams = torch.einsum("nkhw,nk->nhw", feature_maps.detach(), weights).clamp_min(0)
    return cams, logits.detach()


METHODS = {"cam": class_activation_maps, "gradcam": grad_cam}


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
