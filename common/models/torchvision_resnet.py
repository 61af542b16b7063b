"""torchvision's ImageNet ResNets in this project's layout: ``features`` → ``classifier``.

The split (all convolutions in ``features``; global average pooling and the linear layer in
``classifier``) is what CAM, fine-tuning strategies and feature-space OOD detectors need. The
network takes [0, 1] images and normalises them itself with ImageNet statistics.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import nn

from common.models.normalize import Normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet (``resnet18`` … ``resnet152``), optionally with ImageNet weights.

    Args:
        arch: torchvision model name.
        num_classes: outputs when training from scratch (ignored with ImageNet weights).
        weights: torchvision weights name (e.g. ``"IMAGENET1K_V1"``), downloaded when online.
        weights_path: a local copy of those weights (a torchvision ``.pth`` state dict) for
            offline machines; implies the 1000-class ImageNet head.
        class_indices: keep only these ImageNet classes (in this order) in the head, e.g. the
            ImageNet index of each Imagenette class, so logits and CAMs are per dataset class.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        num_classes: int = 1000,
        weights: str | None = None,
        weights_path: str | None = None,
        class_indices: list[int] | None = None,
    ) -> None:
        super().__init__()
        pretrained = weights is not None or weights_path is not None
        try:
            net = torchvision.models.get_model(
                arch,
                weights=None if weights_path else weights,
                num_classes=1000 if pretrained else num_classes,
            )
        except (OSError, RuntimeError) as error:  # no internet: urllib errors are OSErrors
            raise FileNotFoundError(
                f"cannot download {arch} weights {weights} ({type(error).__name__}); offline, "
                "download them elsewhere and pass weights_path"
            ) from None
        if weights_path is not None:
            if not Path(weights_path).is_file():
                raise FileNotFoundError(f"weights_path {weights_path} does not exist")
            net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        if class_indices is not None:
            head = nn.Linear(net.fc.in_features, len(class_indices))
            with torch.no_grad():
                head.weight.copy_(net.fc.weight[class_indices])
                head.bias.copy_(net.fc.bias[class_indices])
            net.fc = head
        self.features = nn.Sequential(
            OrderedDict(
                normalize=Normalize(3, IMAGENET_MEAN, IMAGENET_STD),
                conv1=net.conv1,
                bn1=net.bn1,
                relu=net.relu,
                maxpool=net.maxpool,
                layer1=net.layer1,
                layer2=net.layer2,
                layer3=net.layer3,
                layer4=net.layer4,
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(pool=net.avgpool, flatten=nn.Flatten(), linear=net.fc)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))
