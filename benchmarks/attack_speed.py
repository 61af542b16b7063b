"""Batched attacks versus attacking one image at a time (as the course's seed code does).

Measures, in one run, on N CIFAR-10 test images (the seeded choice of the attack sweeps,
``lab4.robustness.attack_sample``) and the same model, on one device (``--device``):
  (1) an attack of ``lab4.attacks.ATTACKS`` (default: iterative FGSM, per-sample stopping) on
      batches of ``--batch_size`` images, and
  (2) the same attack called on one image at a time,
after a short warm-up of both shapes, checks that both give the same adversarial images (up to
float rounding in the convolutions) and prints images/s and the speed-up (goal >= 20x).

    python benchmarks/attack_speed.py [--attack iterative] [--images 1000] [--epsilon 1]
        [--iterations 10] [--device cuda]
        [--checkpoint runs/lab4/cnn_cifar10/checkpoints/best.ckpt]   # default: pretrained ResNet-20
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import nn

from common.checkpoints import load_classifier_checkpoint
from common.data import CIFAR10DataModule
from common.models.pretrained import ResNet20
from lab4.attacks import ATTACKS, Attack, AttackResult
from lab4.models import SimpleCNN
from lab4.robustness import attack_sample

PRETRAINED = "data/weights/resnet20-12fca82f.th"


@dataclass
class Comparison:
    """Batched vs one image at a time: seconds of each way and how well they agree."""

    images: int
    batch_size: int
    batched_seconds: float
    single_seconds: float
    same_steps: float  #: fraction of images with the same step count
    same_images: float  #: fraction of adversarial images equal up to 1e-4
    batched_success: float
    single_success: float

    @property
    def speedup(self) -> float:
        return self.single_seconds / self.batched_seconds


def timed(attack: Attack, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """``attack`` over the images in batches of ``batch_size``: the result and the seconds."""
    start = time.perf_counter()
    result = AttackResult.cat(
        [
            attack.run(images[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
    )
    if images.device.type == "cuda":
        torch.cuda.synchronize(images.device)
    return result, time.perf_counter() - start


def sample_images(num_images: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """The attack sweeps' seeded choice of CIFAR-10 test images, in [0, 1], on ``device``."""
    data = CIFAR10DataModule(data_dir="data", download=False)
    data.prepare_data()
    data.setup("test")
    images, labels = attack_sample(data, num_images)
    images = data.on_after_batch_transfer((images.to(device), None), 0)[0]
    return images, labels.to(device)


def compare(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: str = "iterative",
    epsilon: float = 1 / 255,
    iterations: int = 10,
    batch_size: int = 500,
    seed: int = 0,
) -> Comparison:
    """Time ``attack`` on ``images`` batched and one at a time (model and images on one device)."""

    def make(steps: int = iterations) -> Attack:  # the same random start (PGD) for both ways
        generator = torch.Generator().manual_seed(seed)
        return ATTACKS[attack](model, epsilon, steps=steps, generator=generator)

    for size in (min(batch_size, len(images)), 1):  # warm-up: CUDA context, kernels, caches
        timed(make(1), images[:size], labels[:size], size)
    batched, batched_seconds = timed(make(), images, labels, batch_size)
    single, single_seconds = timed(make(), images, labels, 1)
    same_images = (batched.adversarial - single.adversarial).abs().amax(dim=(1, 2, 3)) < 1e-4
    return Comparison(
        images=len(images),
        batch_size=batch_size,
        batched_seconds=batched_seconds,
        single_seconds=single_seconds,
        same_steps=(batched.iterations == single.iterations).float().mean().item(),
        same_images=same_images.float().mean().item(),
        batched_success=batched.success.float().mean().item(),
        single_success=single.success.float().mean().item(),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", choices=list(ATTACKS), default="iterative")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--epsilon", type=float, default=1.0, help="step, in 1/255")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--checkpoint", default=None, help="a custom-CNN fit checkpoint")
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args(argv)

    if args.checkpoint:
        model = SimpleCNN(args.widths)
        load_classifier_checkpoint(model, args.checkpoint)
        name = f"custom CNN {args.widths}"
    else:
        model, name = ResNet20(path=PRETRAINED), "pretrained ResNet-20"
    model.to(args.device).eval()
    images, labels = sample_images(args.images, args.device)
    print(
        f"{name}, {args.images} images, {args.attack} ε={args.epsilon:g}/255 × ≤{args.iterations}"
    )
    print(f"device {args.device}, threads: {torch.get_num_threads()}")
    result = compare(
        model, images, labels, args.attack, args.epsilon / 255, args.iterations, args.batch_size
    )
    n = result.images
    print(
        f"batched ({args.batch_size}/batch): {result.batched_seconds:7.1f} s "
        f"({n / result.batched_seconds:7.1f} img/s)"
    )
    print(
        f"one at a time:      {result.single_seconds:7.1f} s "
        f"({n / result.single_seconds:7.1f} img/s)"
    )
    print(f"speed-up: {result.speedup:.1f}x")
    print(f"agreement: same step count {result.same_steps:.3f}, "
          f"same adversarial image {result.same_images:.3f}, "
          f"success rate {result.batched_success:.3f} vs {result.single_success:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
