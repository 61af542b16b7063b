"""Callbacks that observe training and never change it."""

from common.callbacks.cam_export import CAMExport
from common.callbacks.grad_norm import GradientNormMonitor

__all__ = ["CAMExport", "GradientNormMonitor"]
