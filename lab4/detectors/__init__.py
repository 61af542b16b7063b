"""Lab 4's out-of-distribution detectors, one method per module over :class:`common.ood.Detector`
(score: higher = more in-distribution). Each module holds the formula as a plain function and a
thin detector class that configs name as ``lab4.detectors.<Class>``.

Adding a detector: one module here, its import and ``__all__`` entry below, one test in
``tests/test_detectors.py``, and a line in a config's detector list.
"""

from lab4.detectors.energy import Energy, energy
from lab4.detectors.gen import GEN, generalized_entropy, generalized_entropy_grid
from lab4.detectors.knn import KNN
from lab4.detectors.mahalanobis import Mahalanobis
from lab4.detectors.max_logit import MaxLogit, max_logit
from lab4.detectors.msp import MaxSoftmax, max_softmax
from lab4.detectors.odin import ODIN, odin, odin_gradient_sign, odin_grid
from lab4.detectors.react import ReAct, percentiles, react
from lab4.detectors.reconstruction import ReconstructionError
from lab4.detectors.vim import ViM, vim

__all__ = [
    "GEN",
    "KNN",
    "ODIN",
    "Energy",
    "Mahalanobis",
    "MaxLogit",
    "MaxSoftmax",
    "ReAct",
    "ReconstructionError",
    "ViM",
    "energy",
    "generalized_entropy",
    "generalized_entropy_grid",
    "max_logit",
    "max_softmax",
    "odin",
    "odin_grid",
    "odin_gradient_sign",
    "percentiles",
    "react",
    "vim",
]
