"""Reading this project's checkpoints, with one clear error for every way a file can be wrong."""

from __future__ import annotations

from collections.abc import Mapping
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


def network_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The weights of the network in a checkpoint of a module that keeps it in ``self.model``
    (``ImageClassifier``, ``FineTuneClassifier``, ``AutoencoderModule``), keys unprefixed."""
    return {
        key.removeprefix("model."): value
        for key, value in checkpoint.get("state_dict", {}).items()
        if key.startswith("model.")
    }


def check_network(network: nn.Module, shapes: Mapping[str, torch.Size], path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``shapes`` (a checkpoint's network tensors,
    :func:`network_state`) are exactly ``network``'s names and shapes: a checkpoint of another
    network (another class, other widths or depth) is named in one line."""
    expected = {key: value.shape for key, value in network.state_dict().items()}
    missing = [key for key in expected if key not in shapes]
    unexpected = [key for key in shapes if key not in expected]
    reshaped = [key for key in expected if key in shapes and shapes[key] != expected[key]]
    if missing or unexpected or reshaped:
        kinds = {"missing": missing, "unexpected": unexpected, "of another shape": reshaped}
        example = next(f"{kind}: {keys[0]}" for kind, keys in kinds.items() if keys)
        counts = ", ".join(f"{len(keys)} {kind}" for kind, keys in kinds.items())
        raise CheckpointError(
            f"checkpoint {path} holds another network than the config's: it does not fit "
            f"{type(network).__name__} (tensors: {counts}; e.g. {example}); give the model "
            "config it was trained with"
        )


def load_classifier_checkpoint(model: nn.Module, path: str) -> None:
    """Load the network weights (:func:`network_state`) of a Lightning checkpoint into
    ``model``, checked first (:func:`check_network`)."""
    state = network_state(read_checkpoint(path))
    check_network(model, {key: value.shape for key, value in state.items()}, path)
    model.load_state_dict(state)
