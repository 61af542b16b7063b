"""CIFAR-10 as in-distribution data plus named out-of-distribution sets, prepared like it.

Every OOD set becomes uint8 (N, 3, 32, 32) — the ID images' size and channels — and goes through
the same ``on_after_batch_transfer`` (→ [0, 1] floats), so a detector never sees a difference in
preprocessing, only in content. Each set has a ``val`` split (from its source's training images:
for choosing hyperparameters such as ODIN's) and a ``test`` split (for reporting).
"""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveInt
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as F

from common.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FakeDataModule,
    ImageDataModule,
    ImagenetteDataModule,
    MNISTDataModule,
)
from common.data.datamodule import TensorImageDataset, keep_batch

OOD_SETS = ("cifar100", "imagenette", "mnist", "fake")
#: CIFAR-100 classes that overlap CIFAR-10's semantically (vehicles, and animals a CIFAR-10 class
#: could be mistaken for); dropped from the near-OOD set so it holds no in-distribution objects
CIFAR100_OVERLAP = (
    "bus", "pickup_truck", "streetcar", "tractor", "train", "tank", "motorcycle", "bicycle",
    "lawn_mower", "rocket", "fox", "wolf", "leopard", "lion", "tiger", "kangaroo", "camel",
    "cattle", "elephant", "hamster", "mouse", "rabbit", "squirrel", "raccoon", "possum",
)  # fmt: skip
#: Imagenette classes that are CIFAR-10 classes (a dog breed, a truck)
IMAGENETTE_OVERLAP = ("English springer", "garbage truck")


class OODDataModule(CIFAR10DataModule):
    """CIFAR-10 (train/val/test as usual) and OOD sets for :class:`common.callbacks.OODEvaluation`.

    Args:
        ood_sets: names among ``cifar100`` (near-OOD, online only here), ``imagenette``
            (near-OOD, ImageNet-derived, resized to 32 px), ``mnist`` (far-OOD) and ``fake``
            (uniform noise, seeded).
        cifar100_exclude: CIFAR-100 class names dropped from its OOD set (checked against the
            real names: a misspelt name is an error).
        imagenette_exclude: Imagenette class names dropped likewise.
        ood_size: at most this many images per OOD set and split (seeded choice); ``None``: all.
        fake_size: images per FakeData split.
        **kwargs: see :class:`common.data.ImageDataModule`.
    """

    def __init__(
        self,
        ood_sets: list[str] | None = None,
        cifar100_exclude: list[str] | None = None,
        imagenette_exclude: list[str] | None = None,
        ood_size: PositiveInt | None = None,
        fake_size: PositiveInt = 2000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.ood_sets = list(ood_sets if ood_sets is not None else ("imagenette", "mnist", "fake"))
        unknown = sorted(set(self.ood_sets) - set(OOD_SETS))
        if unknown:
            raise ValueError(f"unknown OOD sets {unknown}; choose among {list(OOD_SETS)}")
        self.exclude = {
            "cifar100": list(CIFAR100_OVERLAP if cifar100_exclude is None else cifar100_exclude),
            "imagenette": list(
                IMAGENETTE_OVERLAP if imagenette_exclude is None else imagenette_exclude
            ),
        }
        self.fake_size = fake_size
        self.modules = {name: self.ood_module(name) for name in self.ood_sets}
        self.ood_size = ood_size
        self.ood_splits: dict[tuple[str, str], TensorImageDataset] = {}

    def ood_module(self, name: str) -> ImageDataModule:
        """The DataModule of OOD set ``name`` (its constructor validates the class names)."""
        arguments = {
            "cifar100": (CIFAR100DataModule, {"exclude": self.exclude["cifar100"]}),
            "imagenette": (
                ImagenetteDataModule,
                {"image_size": 32, "exclude": self.exclude["imagenette"]},
            ),
            "mnist": (MNISTDataModule, {}),
            "fake": (
                FakeDataModule,
                {"image_shape": self.image_shape, "train_size": self.fake_size,
                 "test_size": self.fake_size},
            ),
        }  # fmt: skip
        module, options = arguments[name]
        return module(**options, data_dir=self.data_dir, download=self.download, seed=self.seed)

    def prepare_data(self) -> None:
        super().prepare_data()
        for module in self.modules.values():
            module.prepare_data()

    def ood_dataset(self, name: str, split: str) -> TensorImageDataset:
        """OOD set ``name``'s ``"val"`` (source's train images) or ``"test"`` split, as uint8."""
        if (name, split) not in self.ood_splits:
            tensors = self.modules[name].load("train" if split == "val" else "test")
            images = tensors.images
            if images.shape[-2:] != self.image_shape[-2:]:
                images = F.resize(images, list(self.image_shape[-2:]), antialias=True)
            images = images.expand(-1, self.image_shape[0], -1, -1).contiguous()
            if self.ood_size is not None and len(images) > self.ood_size:
                generator = torch.Generator().manual_seed(self.seed + len(name))
                keep = torch.randperm(len(images), generator=generator)[: self.ood_size]
                images = images[keep]
            targets = torch.full((len(images),), -1, dtype=torch.long)  # no ID label
            self.ood_splits[(name, split)] = TensorImageDataset(images, targets)
        return self.ood_splits[(name, split)]

    def validation_images(
        self, ood_set: str, size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 ID validation images and ``ood_set``'s validation images, at most ``size`` of
        each (seeded choice): the data on which detector hyperparameters are chosen."""
        if ood_set not in self.modules:
            raise ValueError(
                f"validation OOD set {ood_set!r} is not among ood_sets {self.ood_sets}"
            )
        generator = torch.Generator().manual_seed(self.seed)
        pair = []
        for images in (self.splits["val"].images, self.ood_dataset(ood_set, "val").images):
            if size is not None and len(images) > size:
                images = images[torch.randperm(len(images), generator=generator)[:size]]
            pair.append(images)
        return pair[0], pair[1]

    def ood_dataloaders(self, split: str = "test") -> dict[str, DataLoader]:
        """One loader per OOD set, batched like the ID test loader."""
        return {
            name: DataLoader(
                self.ood_dataset(name, split),
                batch_size=self.batch_size,
                collate_fn=keep_batch,
                num_workers=self.num_workers,
            )
            for name in self.ood_sets
        }
