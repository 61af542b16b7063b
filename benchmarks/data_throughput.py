"""Measure, in one run, the data layer and the training loop against plain baselines.

(a) images/s of this data layer (uint8 tensors → batch → float [0,1] on the device)
(b) images/s of torchvision ``ImageFolder`` + PIL transforms + ``DataLoader`` on the same folder
(c) epoch time of a depth-8 width-16 MLP under ``Trainer.fit`` vs a plain PyTorch loop over the
    same tensors, same batch size and optimizer.

    python benchmarks/data_throughput.py [--data_dir data] [--images 20000] [--workers 2]

Needs MNIST as an image folder in ``data_dir/mnist`` (``make data``). Prints the ratios; goals:
(a)/(b) ≥ 10, fit/plain ≤ 1.5.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import lightning as L
import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from common.classifier import ImageClassifier
from common.data import MNISTDataModule
from lab1.models import ResidualMLP


def data_layer_rate(dm: MNISTDataModule, n_images: int) -> float:
    loader = dm.train_dataloader()
    start, seen = time.perf_counter(), 0
    while seen < n_images:
        for batch in loader:
            images, _ = dm.on_after_batch_transfer(batch, 0)
            seen += len(images)
            if seen >= n_images:
                break
    return seen / (time.perf_counter() - start)


def image_folder_rate(root: str, n_images: int, batch_size: int, workers: int) -> float:
    transform = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])
    dataset = torchvision.datasets.ImageFolder(root, transform=transform)
    subset = Subset(dataset, torch.randperm(len(dataset))[:n_images].tolist())
    loader = DataLoader(subset, batch_size=batch_size, shuffle=True, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for images, _ in loader:
        seen += len(images)
    return seen / (time.perf_counter() - start)


def make_model() -> ResidualMLP:
    torch.manual_seed(0)
    return ResidualMLP(
        (1, 28, 28), 10, width=16, depth=8, mean=MNISTDataModule.mean, std=MNISTDataModule.std
    )


class EpochTimer(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def fit_epoch_seconds(dm: MNISTDataModule) -> float:
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        callbacks=[timer],
        enable_model_summary=False,
    )
    trainer.fit(ImageClassifier(make_model(), 10), dm)
    return timer.seconds


def plain_epoch_seconds(dm: MNISTDataModule) -> float:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    images, targets = dm.splits["train"].images, dm.splits["train"].targets
    start = time.perf_counter()
    for index in torch.randperm(len(targets)).split(dm.batch_size):
        loss = criterion(model(images[index].float() / 255), targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    dm = MNISTDataModule(data_dir=args.data_dir, batch_size=args.batch_size)
    dm.prepare_data()
    dm.setup()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch size {args.batch_size}"
    )
    # (c) first, while no DataLoader worker processes exist; fit and plain interleaved, best of 3
    fit_epoch_seconds(dm)  # warm-up: the first epoch pays for lazy initialisation
    fit, plain = [], []
    for _ in range(3):
        fit.append(fit_epoch_seconds(dm))
        plain.append(plain_epoch_seconds(dm))
    ours = data_layer_rate(dm, args.images)
    folder = image_folder_rate(
        f"{args.data_dir}/mnist/train", args.images, args.batch_size, args.workers
    )
    print(f"(a) data layer:            {ours:12,.0f} images/s")
    print(f"(b) ImageFolder+PIL ({args.workers} workers): {folder:8,.0f} images/s")
    print(f"    ratio (a)/(b):         {ours / folder:12.1f}x   (goal >= 10)")
    print(f"(c) epoch, Trainer.fit:    {min(fit):12.2f} s   (runs: {fmt(fit)})")
    print(f"    epoch, plain loop:     {min(plain):12.2f} s   (runs: {fmt(plain)})")
    print(f"    ratio fit/plain:       {min(fit) / min(plain):12.2f}    (goal <= 1.5)")


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
