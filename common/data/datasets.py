"""Concrete DataModules: MNIST, CIFAR-10, CIFAR-100 (optionally a class subset) and FakeData."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from common.data.datamodule import ImageDataModule
from common.data.sources import ImageTensors


def _from_torchvision(
    dataset: torchvision.datasets.VisionDataset, classes: list[str]
) -> ImageTensors:
    data = torch.as_tensor(dataset.data)
    images = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)  # -> (N, C, H, W)
    return ImageTensors(images.contiguous(), torch.as_tensor(dataset.targets), classes)


class MNISTDataModule(ImageDataModule):
    """MNIST digits, 1×28×28, classes ``"0"`` … ``"9"``."""

    name = "mnist"
    image_shape = (1, 28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    default_classes = tuple(str(d) for d in range(10))

    def from_torchvision(self, root: Path, train: bool, download: bool) -> ImageTensors:
        dataset = torchvision.datasets.MNIST(root, train=train, download=download)
        return _from_torchvision(dataset, list(self.default_classes))


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10, 3×32×32, the standard ten classes in torchvision's label order."""

    name = "cifar10"
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    default_classes = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )

    def from_torchvision(self, root: Path, train: bool, download: bool) -> ImageTensors:
        dataset = torchvision.datasets.CIFAR10(root, train=train, download=download)
        return _from_torchvision(dataset, dataset.classes)


CIFAR100_CLASSES = tuple(
    """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach
    couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster
    house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree
    motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear
    pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket
    rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
    sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip
    turtle wardrobe whale willow_tree wolf woman worm
    """.split()  # noqa: SIM905 (a word list reads better than 100 quoted strings)
)  # the fine labels, in torchvision's label order


class CIFAR100DataModule(ImageDataModule):
    """CIFAR-100, 3×32×32, optionally restricted to a subset of its (fine) classes.

    Args:
        classes: keep only these class names (relabelled 0..k-1 in this order).
        exclude: drop these class names (e.g. those overlapping CIFAR-10).
        **kwargs: see :class:`ImageDataModule`.

    A misspelt class name is an error, not a silent drop.
    """

    name = "cifar100"
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)

    def __init__(
        self, classes: list[str] | None = None, exclude: list[str] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        unknown = sorted(set(classes or []).union(exclude or []) - set(CIFAR100_CLASSES))
        if unknown:
            raise ValueError(f"not CIFAR-100 class names: {unknown}")
        kept = classes or list(CIFAR100_CLASSES)
        self.default_classes = tuple(c for c in kept if c not in set(exclude or []))

    def from_torchvision(self, root: Path, train: bool, download: bool) -> ImageTensors:
        dataset = torchvision.datasets.CIFAR100(root, train=train, download=download)
        return _from_torchvision(dataset, dataset.classes)

    def select(self, tensors: ImageTensors) -> ImageTensors:
        return tensors.subset(list(self.default_classes))


class FakeDataModule(ImageDataModule):
    """Seeded random images of any shape: for tests, smoke runs and far-OOD baselines.

    Args:
        image_shape: (C, H, W) of every image.
        num_classes: number of (random) labels.
        train_size: images in the train split (val is taken from it).
        test_size: images in the test split.
        **kwargs: see :class:`ImageDataModule`; ``seed`` also seeds the pixels.
    """

    name = "fake"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        num_classes: int = 10,
        train_size: int = 256,
        test_size: int = 64,
        val_size: int = 64,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.image_shape = tuple(image_shape)
        self.mean = (0.5,) * self.image_shape[0]
        self.std = (0.29,) * self.image_shape[0]  # std of U(0, 1)
        self.default_classes = tuple(f"class_{i}" for i in range(num_classes))
        self.sizes = {"train": train_size, "test": test_size}

    def load(self, split: str) -> ImageTensors:
        generator = torch.Generator().manual_seed(self.seed * 2 + (split == "test"))
        n = self.sizes[split]
        images = torch.randint(
            0, 256, (n, *self.image_shape), generator=generator, dtype=torch.uint8
        )
        targets = torch.randint(0, len(self.default_classes), (n,), generator=generator)
        return ImageTensors(images, targets, list(self.default_classes))
