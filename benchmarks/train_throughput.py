"""ResNet-20 training throughput: the project's `fit` against a bare PyTorch loop.

Measures, in one run, images/s of
  (1) a bare loop: forward, loss, backward, SGD step on in-memory CIFAR-sized tensors (the
      ceiling), in fp32 and in bf16 autocast, and
  (2) `python -m lab1 fit --config configs/lab1/resnet20_cifar10.yaml` (same CLI and config,
      run in-process) with the same batch size and precision, over real CIFAR-10 batches;
and prints fit/bare (goal >= 0.9) and bf16/fp32.

    python benchmarks/train_throughput.py [--steps 30] [--precision 32-true]
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch

from common.cli import LabCLI
from common.models import CifarResNet

CONFIG = "configs/lab1/resnet20_cifar10.yaml"


def bare_rate(batch_size: int, steps: int, bf16: bool, channels_last: bool = True) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = CifarResNet((3, 3, 3), mean=[0.5] * 3, std=[0.25] * 3).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    images = torch.rand(batch_size, 3, 32, 32).contiguous(memory_format=fmt)
    targets = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


class StepTimer(L.Callback):
    """Images/s over training batches after a few warm-up batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.images, self.start = warmup, 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()
        if batch_idx >= self.warmup:
            self.images += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def fit_rate(steps: int, precision: str) -> tuple[float, int]:
    warmup = 3
    cli = LabCLI(
        args=[
            "--config",
            CONFIG,
            f"--trainer.precision={precision}",
            "--trainer.max_epochs=1",
            f"--trainer.limit_train_batches={steps + warmup}",
            "--trainer.limit_val_batches=0",
            "--trainer.logger=false",
            "--trainer.default_root_dir=/tmp/train_throughput",
        ],
        run=False,
    )
    timer = StepTimer(warmup)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    return timer.images / timer.seconds, cli.datamodule.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    args = parser.parse_args()
    fit, batch_size = fit_rate(args.steps, args.precision)
    fp32 = bare_rate(batch_size, args.steps, bf16=False)
    bf16 = bare_rate(batch_size, max(3, args.steps // 5), bf16=True)
    bare = bf16 if args.precision == "bf16-mixed" else fp32
    print(f"batch {batch_size}, {torch.get_num_threads()} threads, precision {args.precision}")
    print(f"bare loop fp32:      {fp32:8.0f} images/s")
    print(f"bare loop bf16:      {bf16:8.0f} images/s   bf16/fp32 = {bf16 / fp32:.2f}")
    print(f"python -m lab1 fit:  {fit:8.0f} images/s   fit/bare = {fit / bare:.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
