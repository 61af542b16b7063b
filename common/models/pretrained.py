"""ResNet-20 with the public CIFAR-10 weights of two projects, in this project's module layout.

- ``akamaster``: ``pytorch_resnet_cifar10`` (``resnet20-12fca82f.th``, 91.78 % on the official test
  set): "option A" zero-pad shortcuts, trained on ImageNet mean/std, keys ``module.conv1…``,
  ``module.linear.*``. A copy lies in ``data/weights/`` on this team's machines.
- ``chenyaofo``: ``pytorch-cifar-models`` (``cifar10_resnet20``, 92.60 %): projection shortcuts
  (``downsample``), CIFAR mean/std, keys ``conv1…``, ``fc.*``; fetched with ``torch.hub`` online.

Each format's statistics and shortcut type travel with the model (its own ``Normalize``), so the
data layer's defaults never matter. Loading checks the whole key set and names what is missing or
unexpected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch

from common.models.resnet import CifarResNet
from common.paths import ARCHIVES_ENV

CHENYAOFO_URL = (
    "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"
    "cifar10_resnet20-4118986f.pt"
)
#: the file each format's weights are published as
PUBLISHED_FILES = {"akamaster": "resnet20-12fca82f.th", "chenyaofo": "cifar10_resnet20-4118986f.pt"}
FORMATS = {
    "akamaster": dict(shortcut="zero_pad", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "chenyaofo": dict(
        shortcut="projection", mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010)
    ),
}


class CheckpointMismatchError(RuntimeError):
    """A weights file that does not fit the model (not a state dict, or other keys); the message
    says what is wrong in one line."""


def _to_our_keys(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if source == "chenyaofo":
            key = key.replace(".downsample.", ".shortcut.").replace("fc.", "linear.", 1)
        head = key.startswith("linear.")
        renamed[("classifier." if head else "features.") + key] = value
    return renamed


def load_weights(model: CifarResNet, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` (a ``source``-format state dict) into ``model``, checking every key."""
    state = _to_our_keys(state, source)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    expected -= {k for k in expected if k.startswith("features.normalize.")}
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"{source} checkpoint does not fit {type(model).__name__}: "
            f"missing {missing[:8]}{'…' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'…' if len(unexpected) > 8 else ''}"
        )
    model.load_state_dict(state, strict=False)


def _read_state_dict(path: str, source: str) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``path`` (bare, or under ``state_dict`` as akamaster's),
    read with ``weights_only=True``; any other file (text, a whole pickled model) is one error
    that says what the file should be."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises unrelated types (KeyError, UnpicklingError, …)
        if "Weights only load failed" in str(error):  # torch's advice: weights_only=False
            found = "it pickles Python objects, e.g. a whole model, which are not loaded for safety"
        else:
            found = "not a file written by torch.save"
    else:
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return state
        found = f"a {type(checkpoint).__name__} that is not a dict of tensors"
    raise CheckpointMismatchError(
        f"{path} is not a PyTorch state dict of ResNet-20 ({found}): expected a file saved with "
        "torch.save(model.state_dict()), a dict of tensors (or one under 'state_dict'), as "
        f"{source}'s {PUBLISHED_FILES[source]} is"
    )


def _find_weights(path: str) -> str:
    """``path``, or the file of that name in ``$DLA_DATA_ARCHIVES/weights`` (offline machines;
    ``make data`` copies them to ``data/weights/``, where the configs name them)."""
    if Path(path).is_file():
        return path
    archives = os.environ.get(ARCHIVES_ENV)
    fallback = Path(archives, "weights", Path(path).name) if archives else None
    if fallback is not None and fallback.is_file():
        return str(fallback)
    raise FileNotFoundError(
        f"pretrained weights not found at {path}"
        + (f" nor {fallback}" if fallback else f" (set {ARCHIVES_ENV} to a folder with weights/)")
    )


class ResNet20(CifarResNet):
    """ResNet-20 (0.27 M parameters), optionally with pretrained CIFAR-10 weights.

    A class rather than a factory function so that configs can override its arguments (and
    those of modules that wrap it) from the command line.

    Args:
        weights: ``None`` (random init, projection shortcuts, statistics from the data),
            ``"akamaster"`` or ``"chenyaofo"``.
        path: the checkpoint file; for ``chenyaofo`` it may be omitted online (torch.hub).
        num_classes: outputs (must be 10 with pretrained weights).

    Example:
        >>> model = ResNet20("akamaster", "data/weights/resnet20-12fca82f.th")  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: Literal["akamaster", "chenyaofo"] | None = None,
        path: str | None = None,
        num_classes: int = 10,
    ) -> None:
        if weights is not None and weights not in FORMATS:
            raise ValueError(f"unknown weights {weights!r}; choose one of {sorted(FORMATS)}")
        super().__init__((3, 3, 3), num_classes=num_classes, **FORMATS.get(weights, {}))
        if weights is None:
            return
        if path is not None:
            state = _read_state_dict(_find_weights(path), weights)
        elif weights == "chenyaofo":
            state = torch.hub.load_state_dict_from_url(
                CHENYAOFO_URL, map_location="cpu", weights_only=True
            )
        else:
            raise ValueError(
                "akamaster weights need `path` (e.g. data/weights/resnet20-12fca82f.th)"
            )
        load_weights(self, state, weights)
