"""The OOD DataModule: every OOD set shaped like CIFAR-10, class exclusions validated."""

import pytest
import torch

from common.data.datasets import CIFAR100_CLASSES, IMAGENETTE_CLASSES
from lab4.data import OODDataModule


def test_every_ood_set_is_shaped_like_cifar10_and_drops_overlapping_classes(ood_folders):
    data = OODDataModule(
        data_dir=str(ood_folders),
        ood_sets=["cifar100", "imagenette", "mnist", "fake"],
        cifar100_exclude=["bus", "lion"],
        val_size=4,
        fake_size=5,
        download=False,
    )
    data.prepare_data()
    sizes = {}
    for name in data.ood_sets:
        for split in ("val", "test"):
            dataset = data.ood_dataset(name, split)
            assert dataset.images.dtype == torch.uint8
            assert dataset.images.shape[1:] == (3, 32, 32), (name, split)
            sizes[(name, split)] = len(dataset)
    assert sizes[("cifar100", "test")] == 98 and sizes[("cifar100", "val")] == 196
    assert sizes[("imagenette", "test")] == 8 and sizes[("imagenette", "val")] == 16
    assert sizes[("mnist", "test")] == 10 and sizes[("fake", "test")] == 5
    gray = data.ood_dataset("mnist", "test").images
    assert torch.equal(gray[:, 0], gray[:, 2])  # grey → three equal channels
    loaders = data.ood_dataloaders("test")
    images, targets = next(iter(loaders["imagenette"]))
    assert images.shape == (8, 3, 32, 32) and (targets == -1).all()


def test_misspelt_or_unknown_names_are_errors():
    with pytest.raises(ValueError, match="not CIFAR-100 class names: \\['lions'\\]"):
        OODDataModule(ood_sets=["cifar100"], cifar100_exclude=["lions"])
    with pytest.raises(ValueError, match="unknown OOD sets \\['svhn'\\]"):
        OODDataModule(ood_sets=["svhn"])
    with pytest.raises(ValueError, match="not Imagenette classes"):
        OODDataModule(ood_sets=["imagenette"], imagenette_exclude=["springer"])


def test_default_exclusions_are_real_class_names():
    from lab4.data import CIFAR100_OVERLAP, IMAGENETTE_OVERLAP

    assert set(CIFAR100_OVERLAP) <= set(CIFAR100_CLASSES)
    names = {name for name, _ in IMAGENETTE_CLASSES.values()}
    assert set(IMAGENETTE_OVERLAP) <= names
