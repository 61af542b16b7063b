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
from jsonargparse.typing import PositiveInt

from common.cam import METHODS, overlay, upsample
from common.commands import (
    add_model_arguments,
    command_parser,
    start_run,
    writable_folder,
    write_text_atomic,
)
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
            raise FileNotFoundError(f"image {item} does not exist; give image files or folders")
    if not files:
        raise FileNotFoundError(f"no images in {inputs} ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_images(files: list[Path], size: int) -> torch.Tensor:
    """[0, 1] float images (N, 3, size, size); an unreadable file is named in the error."""
    images = []
    for path in files:
        try:
            images.append(read_image(path, 3, size))
        except RuntimeError as error:
            raise FileNotFoundError(f"{path} is not a readable image ({error})") from None
    return torch.stack(images).float() / 255


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = command_parser("python -m lab1 cam", __doc__)
    add_model_arguments(parser, "runs/lab1/cam", data_type=None)
    parser.add_argument("--class_names", type=list[str], required=True, help="in label order")
    parser.add_argument("--images", type=list[str], required=True, help="files and/or folders")
    parser.add_argument("--max_images", type=PositiveInt, default=12, help="evenly spaced")
    parser.add_argument("--image_size", type=PositiveInt, default=224)
    parser.add_argument("--method", type=Literal["cam", "gradcam"], default="cam")
    parser.add_argument(
        "--output", type=str | None, default=None, help="the PNG grid (default: <run_dir>/cam.png)"
    )
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    files = image_files(cfg.images)
    files = files[:: max(1, len(files) // cfg.max_images)][: cfg.max_images]
    images = load_images(files, cfg.image_size)
    run = start_run(cfg)
    model, images = run.model, images.to(run.device)
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
    output = Path(cfg.output or run.run_dir / "cam.png")
    writable_folder(output.parent, "--output")
    output = plot_cam_grid(images.cpu(), overlay(images, saliency).cpu(), titles, output)
    scores = explanation_confidence(model, images, saliency, predicted)
    write_text_atomic(output.with_suffix(".json"), json.dumps({"images": len(files), **scores}))
    run.log_metrics({f"cam/{key}": value for key, value in scores.items()})
    run.log_figures("cam", [output])
    run.finish()
    log.info(
        "CAM of %d images → %s (Average Drop %.3f, Increase in Confidence %.3f)",
        len(files),
        output,
        scores["average_drop"],
        scores["increase_in_confidence"],
    )
    return scores
