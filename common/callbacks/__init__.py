"""Callbacks that observe training and never change it — except ``OptunaPruning``, which, like
Lightning's ``EarlyStopping``, may end a sweep search's fit early."""

from common.callbacks.cam_export import CAMExport
from common.callbacks.grad_norm import GradientNormMonitor
from common.callbacks.line_progress import LineProgress
from common.callbacks.ood_evaluation import OODEvaluation
from common.callbacks.optuna_pruning import OptunaPruning

__all__ = ["CAMExport", "GradientNormMonitor", "LineProgress", "OODEvaluation", "OptunaPruning"]
