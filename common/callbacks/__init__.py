"""Callbacks that observe training and never change it."""

from common.callbacks.grad_norm import GradientNormMonitor

__all__ = ["GradientNormMonitor"]
