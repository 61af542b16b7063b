"""ResNet-20 training throughput: the project's `fit` against a bare PyTorch loop, on a device.

Measures, in one run, images/s of
  (1) `python -m lab1 fit --config configs/lab1/resnet20_cifar10.yaml` (same CLI and config, run
      in-process, ``--trainer.callbacks=[]``: without the EMA callback) over real CIFAR-10
      batches, and
  (2) a bare loop doing the same work per step without Lightning: the same network, batch size,
      memory format (channels-last), precision (autocast; a GradScaler for ``16-mixed``),
      optimizer and one-cycle schedule, uint8 batch → device → float, the DataModule's batched
      augmentation (crop, flip, Cutout) on the device, label-smoothed cross-entropy;
and prints fit/bare (goal >= 0.95: what Lightning and the LightningModule's bookkeeping — metric
updates, the finite-loss check — cost around the step), plus the bare loop at the other precision.

    python benchmarks/train_throughput.py [--steps 30] [--accelerator auto] [--precision auto]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time

import lightning as L
import torch

from common.classifier import ImageClassifier
from common.cli import LabCLI
from common.data.datamodule import ImageDataModule
from common.trainer import resolve_precision

CONFIG = "configs/lab1/resnet20_cifar10.yaml"
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def device_of(accelerator: str) -> torch.device:
    """Lightning's accelerator name → the torch device it trains on."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(L.Callback):
    """Images/s over training batches after a few warm-up batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.images, self.start, self.seconds = warmup, 0, 0.0, float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            synchronize(pl_module.device)
            self.start = time.perf_counter()
        if batch_idx >= self.warmup:
            self.images += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module):  # before the module's (metric) epoch end
        synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def fit_rate(
    steps: int,
    accelerator: str = "auto",
    precision: str = "auto",
    warmup: int = 3,
    batch_size: int | None = None,
) -> tuple[float, LabCLI]:
    """Images/s of the recipe's ``fit`` over ``steps`` batches after ``warmup`` ones, and the CLI
    (its ``model`` and ``datamodule`` give :func:`bare_rate` the same work)."""
    with tempfile.TemporaryDirectory() as run_dir:
        args = [
            "--config", CONFIG,
            f"--trainer.accelerator={accelerator}",
            "--trainer.devices=1",
            f"--trainer.precision={precision}",
            "--trainer.callbacks=[]",
            "--trainer.max_epochs=1",
            f"--trainer.limit_train_batches={steps + warmup}",
            "--trainer.limit_val_batches=0",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={run_dir}",
        ]  # fmt: skip
        if batch_size is not None:
            args.append(f"--data.init_args.batch_size={batch_size}")
        cli = LabCLI(args=args, run=False)
        timer = StepTimer(warmup)
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, cli.datamodule)
    return timer.images / timer.seconds, cli


def bare_rate(
    classifier: ImageClassifier,
    data: ImageDataModule,
    steps: int,
    accelerator: str = "auto",
    precision: str = "auto",
    warmup: int = 3,
) -> float:
    """Images/s of a plain PyTorch loop doing a ``fit`` step's work (a copy of ``classifier``'s
    network, its optimizer, schedule and loss; ``data``'s batch size and augmentation)."""
    device = device_of(accelerator)
    precision = str(resolve_precision(precision, accelerator)[0])
    if precision not in ("32-true", *AUTOCAST):
        raise ValueError(f"bare loop: precision {precision!r} not in 32-true, {list(AUTOCAST)}")
    if "train" not in data.splits:
        data.prepare_data()
        data.setup("fit")
    torch.manual_seed(0)
    network = copy.deepcopy(classifier.model).to(device).train()  # keeps its memory format
    memory_format = classifier.memory_format
    optimizer = classifier.optimizer(network.parameters())
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, [group["lr"] for group in optimizer.param_groups], total_steps=warmup + steps
    )
    criterion = copy.deepcopy(classifier.criterion)  # label smoothing
    augment = data.augment.to(device)
    generator = torch.Generator(device).manual_seed(0)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    autocast = (
        torch.autocast(device.type, dtype=AUTOCAST[precision])
        if precision in AUTOCAST
        else contextlib.nullcontext()
    )
    batch = data.splits["train"].images[: data.batch_size]
    targets = data.splits["train"].targets[: data.batch_size]

    def step() -> None:
        images = batch.to(device).float().div_(255)
        if augment.active:
            images = augment(images, generator)
        with autocast:
            logits = network(images.contiguous(memory_format=memory_format))
            loss = criterion(logits, targets.to(device))
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * len(batch) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda"])
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "32-true", "bf16-mixed", "16-mixed"]
    )
    args = parser.parse_args(argv)
    torch.set_float32_matmul_precision("high")  # as `python -m lab1` sets it
    precision, reason = resolve_precision(args.precision, args.accelerator)
    fit, cli = fit_rate(args.steps, args.accelerator, str(precision))
    bare = bare_rate(cli.model, cli.datamodule, args.steps, args.accelerator, str(precision))
    other = "bf16-mixed" if precision == "32-true" else "32-true"
    other_bare = bare_rate(
        cli.model, cli.datamodule, max(3, args.steps // 5), args.accelerator, other
    )
    device = device_of(args.accelerator)
    print(
        f"{device}, batch {cli.datamodule.batch_size}, {torch.get_num_threads()} threads, "
        f"precision {precision} ({reason})"
    )
    print(f"bare loop {precision:>10}:   {bare:8.0f} images/s")
    print(f"bare loop {other:>10}:   {other_bare:8.0f} images/s   {other}/{precision} = "
          f"{other_bare / bare:.2f}")  # fmt: skip
    print(f"python -m lab1 fit:     {fit:8.0f} images/s   fit/bare = {fit / bare:.2f} "
          "(goal >= 0.95)")  # fmt: skip


if __name__ == "__main__":
    main()
