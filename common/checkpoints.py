"""Reading this project's checkpoints, with one clear error for every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do, in one line."""


def read_checkpoint(path: str | Path) -> dict:
    """The Lightning checkpoint at ``path``, loaded with ``weights_only=True``; a missing, empty,
    truncated/corrupt or foreign file (e.g. bare pretrained weights) raises
    :class:`CheckpointError`."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run `fit` first")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty; run `fit` again or pass another file")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a damaged file
        first = (str(error).splitlines() or [""])[0].split(". ")[0][:100]
        reason = f"{type(error).__name__}: {first}"
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({reason}); it is damaged or truncated: run `fit` "
            "again or pass another file"
        ) from None
    if not isinstance(checkpoint, dict) or "pytorch-lightning_version" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint (bare weights?); pass a file written by "
            "`fit`, or give pretrained weights to the model's own option (e.g. ResNet20's path)"
        )
    return checkpoint


def load_classifier_checkpoint(model: nn.Module, path: str) -> None:
    """Load the ``model.*`` weights of a Lightning checkpoint of a module that keeps its network
    in ``self.model`` (``ImageClassifier``, ``FineTuneClassifier``, ``AutoencoderModule``)."""
    checkpoint = read_checkpoint(path)
    state = {
        key.removeprefix("model."): value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith("model.")
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected or not state:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; give the model config it was trained with"
        )
