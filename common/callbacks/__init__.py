"""Callbacks that observe training and never change it."""

from common.callbacks.cam_export import CAMExport
from common.callbacks.grad_norm import GradientNormMonitor
from common.callbacks.ood_evaluation import OODEvaluation

__all__ = ["CAMExport", "GradientNormMonitor", "OODEvaluation"]
