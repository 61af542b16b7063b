"""``python -m lab1 cam``: Class Activation Maps for image files or folders, as one PNG grid.

The network (``features`` → global average pooling → linear, e.g. ``CifarResNet`` or
``TorchvisionResNet``) comes from the config, optionally with a ``fit`` checkpoint. Each image is
resized and centre-cropped to ``image_size``; the grid shows image | CAM of the predicted class
(``method: gradcam`` for Grad-CAM), titled with the class and its probability; Average Drop and
Increase in Confidence of the maps are printed and saved beside the grid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import nn

from common.cam import METHODS, overlay, upsample
from common.checkpoints import load_classifier_checkpoint
from common.data.sources import IMAGE_SUFFIXES, read_image
from common.metrics import explanation_confidence
from common.plots import plot_cam_grid

log = logging.getLogger(__name__)


def image_files(inputs: list[str]) -> list[Path]:
    """Files as given, and the images of folders (recursively, sorted)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"image {item} does not exist")
    if not files:
        raise FileNotFoundError(f"no images in {inputs}")
    return files


def load_images(files: list[Path], size: int) -> torch.Tensor:
    """[0, 1] float images (N, 3, size, size); an unreadable file is named in the error."""
    images = []
    for path in files:
        try:
            images.append(read_image(path, 3, size))
        except RuntimeError as error:
            raise ValueError(f"{path} is not a readable image ({error})") from None
    return torch.stack(images).float() / 255


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = ArgumentParser(prog="python -m lab1 cam", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--model", type=nn.Module, required=True)
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a fit checkpoint")
    parser.add_argument("--class_names", type=list[str], required=True, help="in label order")
    parser.add_argument("--images", type=list[str], required=True, help="files and/or folders")
    parser.add_argument("--max_images", type=int, default=12, help="evenly spaced over the list")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--method", type=Literal["cam", "gradcam"], default="cam")
    parser.add_argument("--output", type=str, default="runs/cam/cam.png")
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = cfg.model.eval()
    if cfg.checkpoint:
        load_classifier_checkpoint(model, cfg.checkpoint)
    try:
        files = image_files(cfg.images)
        files = files[:: max(1, len(files) // cfg.max_images)][: cfg.max_images]
        images = load_images(files, cfg.image_size)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    cams, logits = METHODS[cfg.method](model, images)
    if logits.shape[1] != len(cfg.class_names):
        raise SystemExit(
            f"error: the model has {logits.shape[1]} classes but {len(cfg.class_names)} "
            "class_names are given"
        )
    probabilities, predicted = logits.softmax(dim=1).max(dim=1)
    saliency = upsample(cams, images.shape[-2:])
    titles = [
        f"{path.name[:22]}\npred {cfg.class_names[c]} {q:.2f}"
        for path, c, q in zip(files, predicted.tolist(), probabilities.tolist(), strict=True)
    ]
    output = plot_cam_grid(images, overlay(images, saliency), titles, cfg.output)
    scores = explanation_confidence(model, images, saliency, predicted)
    output.with_suffix(".json").write_text(json.dumps({"images": len(files), **scores}, indent=1))
    log.info(
        "CAM of %d images → %s (Average Drop %.3f, Increase in Confidence %.3f)",
        len(files),
        output,
        scores["average_drop"],
        scores["increase_in_confidence"],
    )
    return scores
