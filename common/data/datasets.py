"""Concrete DataModules: MNIST, CIFAR-10, CIFAR-100 (optionally a class subset) and FakeData."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from jsonargparse.typing import NonNegativeInt, PositiveInt

from common.data.datamodule import ImageDataModule
from common.data.sources import ImageTensors, decode_image_folder


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


IMAGENETTE_CLASSES = {  # wnid -> (readable name, ImageNet-1k index), as in classes.tsv
    "n01440764": ("tench", 0),
    "n02102040": ("English springer", 217),
    "n02979186": ("cassette player", 482),
    "n03000684": ("chain saw", 491),
    "n03028079": ("church", 497),
    "n03394916": ("French horn", 566),
    "n03417042": ("garbage truck", 569),
    "n03425413": ("gas pump", 571),
    "n03445777": ("golf ball", 574),
    "n03888257": ("parachute", 701),
}


class ImagenetteDataModule(ImageDataModule):
    """Imagenette (10 easy ImageNet classes), resized once to ``image_size`` on decoding.

    Its ``val`` split serves as the test split; validation images come from ``train``
    (``val_size``). Class folders are wnids; :attr:`class_names` are the readable names.

    Args:
        image_size: side of the square images (32 to stand in for CIFAR, 128-224 for CAM).
        exclude: classes to drop, by readable name or wnid (e.g. those overlapping CIFAR-10).
        **kwargs: see :class:`ImageDataModule`.
    """

    name = "imagenette"
    mean = (0.485, 0.456, 0.406)  # ImageNet statistics
    std = (0.229, 0.224, 0.225)
    split_dirs = {"train": "train", "test": "val"}

    def __init__(
        self,
        image_size: PositiveInt = 32,
        exclude: list[str] | None = None,
        val_size: NonNegativeInt = 1000,
        **kwargs,
    ) -> None:
        super().__init__(val_size=val_size, **kwargs)
        self.resize = image_size
        self.image_shape = (3, image_size, image_size)
        wnid_of = {name: wnid for wnid, (name, _) in IMAGENETTE_CLASSES.items()}
        unknown = sorted(set(exclude or []) - set(wnid_of) - set(IMAGENETTE_CLASSES))
        if unknown:
            raise ValueError(f"not Imagenette classes: {unknown}; valid names: {sorted(wnid_of)}")
        dropped = {wnid_of.get(name, name) for name in exclude or []}
        self.default_classes = tuple(w for w in IMAGENETTE_CLASSES if w not in dropped)

    @property
    def class_names(self) -> list[str]:
        return [IMAGENETTE_CLASSES[wnid][0] for wnid in self.default_classes]

    @property
    def imagenet_indices(self) -> list[int]:
        """ImageNet-1k class index of each label (to read an ImageNet model's logits)."""
        return [IMAGENETTE_CLASSES[wnid][1] for wnid in self.default_classes]

    def from_torchvision(self, root: Path, train: bool, download: bool) -> ImageTensors:
        split = "train" if train else "val"
        torchvision.datasets.Imagenette(root, split=split, size="320px", download=download)
        return decode_image_folder(root / "imagenette2-320" / split, 3, self.resize)

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
        train_size: PositiveInt = 256,
        test_size: PositiveInt = 64,
        val_size: NonNegativeInt = 64,
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
