"""Networks and layers shared by more than one lab (plain ``nn.Module``s)."""

from common.models.normalize import Normalize, find_normalize
from common.models.resnet import BasicBlock, CifarResNet
from common.models.torchvision_resnet import TorchvisionResNet

__all__ = ["BasicBlock", "CifarResNet", "Normalize", "TorchvisionResNet", "find_normalize"]
