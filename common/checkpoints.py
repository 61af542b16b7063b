"""Loading a network's weights from a Lightning checkpoint of this project."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def load_classifier_checkpoint(model: nn.Module, path: str) -> None:
    """Load the ``model.*`` weights of a Lightning checkpoint of a module that keeps its network
    in ``self.model`` (``ImageClassifier``, ``FineTuneClassifier``, ``AutoencoderModule``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; run `fit` first")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = {
        key.removeprefix("model."): value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith("model.")
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected or not state:
        raise ValueError(
            f"checkpoint {path} does not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; give the model config it was trained with"
        )
