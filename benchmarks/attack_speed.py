"""Batched attacks versus attacking one image at a time (as the course's seed code does).

Measures, in one run, on N CIFAR-10 test images (the seeded choice of the attack sweeps,
``lab4.robustness.attack_sample``) and the same model:
  (1) an attack of ``lab4.attacks.ATTACKS`` (default: iterative FGSM, per-sample stopping) on
      batches of ``--batch_size`` images, and
  (2) the same attack called on one image at a time,
checks that both give the same adversarial images (up to float rounding in the convolutions) and
prints images/s and the speed-up (goal >= 20x).

    python benchmarks/attack_speed.py [--attack iterative] [--images 1000] [--epsilon 1]
        [--iterations 10]
        [--checkpoint runs/lab4/cnn_cifar10/checkpoints/best.ckpt]   # default: pretrained ResNet-20
"""

from __future__ import annotations

import argparse
import time

import torch

from common.checkpoints import load_classifier_checkpoint
from common.data import CIFAR10DataModule
from common.models.pretrained import ResNet20
from lab4.attacks import ATTACKS, Attack, AttackResult
from lab4.models import SimpleCNN
from lab4.robustness import attack_sample


def timed(attack: Attack, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """``attack`` over the images in batches of ``batch_size``: the result and the seconds."""
    start = time.perf_counter()
    result = AttackResult.cat(
        [
            attack.run(images[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
    )
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", choices=list(ATTACKS), default="iterative")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--epsilon", type=float, default=1.0, help="step, in 1/255")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--checkpoint", default=None, help="a custom-CNN fit checkpoint")
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args()

    data = CIFAR10DataModule(data_dir="data", download=False)
    data.prepare_data()
    data.setup("test")
    images, labels = attack_sample(data, args.images)  # the sweeps' seeded choice
    images = data.on_after_batch_transfer((images, None), 0)[0]
    if args.checkpoint:
        model = SimpleCNN(args.widths)
        load_classifier_checkpoint(model, args.checkpoint)
        name = f"custom CNN {args.widths}"
    else:
        model, name = ResNet20(path="data/weights/resnet20-12fca82f.th"), "pretrained ResNet-20"
    model.eval()
    print(
        f"{name}, {args.images} images, {args.attack} ε={args.epsilon:g}/255 × ≤{args.iterations}"
    )
    print(f"threads: {torch.get_num_threads()}")

    def make() -> Attack:  # the same random start (PGD) for both ways
        generator = torch.Generator().manual_seed(data.seed)
        return ATTACKS[args.attack](
            model, args.epsilon / 255, steps=args.iterations, generator=generator
        )

    batched, batched_seconds = timed(make(), images, labels, args.batch_size)
    single, single_seconds = timed(make(), images, labels, 1)

    same_steps = (batched.iterations == single.iterations).float().mean().item()
    same_images = (batched.adversarial - single.adversarial).abs().amax(dim=(1, 2, 3)) < 1e-4
    print(
        f"batched ({args.batch_size}/batch): {batched_seconds:7.1f} s "
        f"({len(images) / batched_seconds:7.1f} img/s)"
    )
    print(
        f"one at a time:      {single_seconds:7.1f} s ({len(images) / single_seconds:7.1f} img/s)"
    )
    print(f"speed-up: {single_seconds / batched_seconds:.1f}x")
    print(f"agreement: same step count {same_steps:.3f}, "
          f"same adversarial image {same_images.float().mean().item():.3f}, "
          f"success rate {batched.success.float().mean().item():.3f} vs "
          f"{single.success.float().mean().item():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
