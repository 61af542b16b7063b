"""Fast image-classification data: decoded once to uint8 tensors, augmented in batches."""

from common.data.augment import BatchAugment
from common.data.datamodule import ImageDataModule, TensorImageDataset
from common.data.datasets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FakeDataModule,
    ImagenetteDataModule,
    MNISTDataModule,
)
from common.data.sources import DatasetNotFoundError, ImageTensors, load_split

__all__ = [
    "BatchAugment",
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "DatasetNotFoundError",
    "FakeDataModule",
    "ImageDataModule",
    "ImageTensors",
    "ImagenetteDataModule",
    "MNISTDataModule",
    "TensorImageDataset",
    "load_split",
]
