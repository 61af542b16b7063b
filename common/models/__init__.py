"""Networks and layers shared by more than one lab (plain ``nn.Module``s)."""

from common.models.normalize import Normalize, find_normalize

__all__ = ["Normalize", "find_normalize"]
