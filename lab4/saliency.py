"""``python -m lab4 saliency``: the input gradients of several classifiers on the same test images,
as one PNG grid (rows: the images, then one row per model; columns: the images).

Robust networks have input gradients that look like images — edges and shapes of the object —
while a plain network's look like noise (Tsipras, Santurkar, Engstrom, Turner & Madry,
"Robustness May Be at Odds with Accuracy", ICLR 2019, https://arxiv.org/abs/1805.12152, Fig. 2;
JARN trains for it, lab4.jarn). Each map is the signed gradient of the true class's loss,
∇ₓ CE(f(x), y) (:func:`input_gradients`, eval mode), shown in colour as Tsipras et al. show it
(:func:`gradient_image`): per image, clipped to ±3 standard deviations and rescaled to [0, 1],
so a zero gradient is grey.

``--models`` maps each row's label to a ``fit`` checkpoint of the network ``--model`` (every
Lightning module of the lab keeps it in ``.model``: ImageClassifier, AdversarialClassifier,
JARNClassifier), or of the network ``--networks`` gives for that label (a ResNet-20 row among
CNN rows); a checkpoint that does not exist yet is skipped with a warning and the other
models are drawn; one that exists but does not fit stops the command. The images are
:func:`lab4.robustness.attack_sample`'s class-balanced choice from the test split of ``--data``
(with the data block of the attacks, a subset of the images the robustness table attacks).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import nn
from torch.nn import functional as F

from common.checkpoints import load_classifier_checkpoint
from common.commands import command_parser, start_run, writable_folder
from common.data.datamodule import ImageDataModule
from lab4.attacks import eval_mode
from lab4.plots import plot_saliency_grid
from lab4.robustness import attack_sample

log = logging.getLogger(__name__)

TITLE = "input gradients ∇ₓ CE(f(x), y), each clipped to ±3σ of its image (grey: 0)"


def input_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∇ₓ CE(f(x), y) of each image for its own label, ``[N, C, H, W]`` like ``images``.

    One batched backward of the summed loss, in eval mode (so no image's gradient depends on
    the others through BatchNorm), the model's modes restored after; works inside
    ``torch.inference_mode`` and leaves the parameters' ``.grad`` alone.

    Example::

        gradients = input_gradients(model, images, labels)   # images in [0, 1]
        maps = gradient_image(gradients)                      # in [0, 1], for imshow
    """
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        inputs = images.clone().requires_grad_(True)
        loss = F.cross_entropy(model(inputs), labels.clone(), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    return gradient


def gradient_image(gradients: torch.Tensor, clip: PositiveFloat = 3.0) -> torch.Tensor:
    """Signed gradients ``[N, C, H, W]`` as images in [0, 1] (Tsipras et al. 2019): per image,
    ``0.5 + g / (2·clip·σ)`` clipped to [0, 1], σ the standard deviation of the image's gradient
    over its channels and pixels — zero is grey, ±``clip``·σ and beyond are the extremes."""
    scale = 2 * clip * gradients.flatten(1).std(dim=1).clamp_min(1e-12)
    return (0.5 + gradients / scale.view(-1, *[1] * (gradients.dim() - 1))).clamp(0, 1)


def main(argv: list[str] | None = None) -> Path:
    parser = command_parser("python -m lab4 saliency", __doc__)
    parser.add_argument("--seed_everything", type=int, default=0)
    parser.add_argument(
        "--models", type=dict[str, str], required=True, help="row label → fit checkpoint"
    )
    parser.add_argument(
        "--model", type=nn.Module, required=True, sub_configs=True, help="the models' network"
    )
    parser.add_argument(
        "--networks",
        type=dict[str, nn.Module],
        default={},
        help="row label → its network, for the rows whose network is not --model",
    )
    parser.add_argument("--data", type=ImageDataModule, required=True, sub_configs=True)
    parser.add_argument("--num_images", type=PositiveInt, default=10, help="class-balanced")
    parser.add_argument("--device", type=str | None, default=None, help="default: cuda if any")
    parser.add_argument("--run_dir", type=str, default="runs/lab4/saliency")
    parser.add_argument("--logger", type=bool, default=True, help="CSV + W&B (offline) loggers")
    parser.add_argument(
        "--output", type=str | None, default=None, help="the PNG (default: <run_dir>/saliency.png)"
    )
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    checkpoints = {label: path for label, path in cfg.models.items() if Path(path).is_file()}
    if not checkpoints:  # before the data are read
        raise SystemExit("error: none of the --models checkpoints exists; run `fit` first")
    cfg["checkpoint"] = None  # start_run's single checkpoint: here one per model, below
    run = start_run(cfg)
    for label, path in cfg.models.items():
        if label not in checkpoints:
            log.warning("saliency: %s: checkpoint %s does not exist yet; skipped", label, path)
    run.data.setup("test")
    images, labels = attack_sample(run.data, cfg.num_images)
    images = torch.cat(list(run.data.preprocessed_batches(images, run.device)))
    labels = labels.to(run.device)
    maps = {}
    for label, path in checkpoints.items():
        model = cfg.networks[label] if label in cfg.networks else copy.deepcopy(run.model)
        load_classifier_checkpoint(model, path)
        maps[label] = gradient_image(input_gradients(model.to(run.device), images, labels)).cpu()
    output = Path(cfg.output or run.run_dir / "saliency.png")
    writable_folder(output.parent, "--output")
    names = [run.data.class_names[c] for c in labels.tolist()]
    output = plot_saliency_grid(images.cpu(), maps, names, output, title=TITLE)
    run.log_figures("saliency", [output])
    run.finish()
    log.info("input gradients of %d models on %d images → %s", len(maps), len(labels), output)
    return output
