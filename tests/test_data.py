import tarfile

import pytest
import torch

from common.data import (
    BatchAugment,
    CIFAR100DataModule,
    DatasetNotFoundError,
    FakeDataModule,
    MNISTDataModule,
)
from common.data.sources import ARCHIVES_ENV
from tests.conftest import write_image_folder


@pytest.fixture
def mnist_folder(tmp_path):
    digits = [str(d) for d in range(10)]
    train = write_image_folder(tmp_path / "mnist" / "train", digits, 6, shape=(1, 28, 28))
    test = write_image_folder(tmp_path / "mnist" / "test", digits, 2, shape=(1, 28, 28), seed=1)
    return tmp_path, train, test


def test_image_folder_decodes_to_uint8_tensors_with_folder_labels(mnist_folder):
    data_dir, train, test = mnist_folder
    dm = MNISTDataModule(data_dir=str(data_dir), val_size=0)
    loaded = dm.load("train")
    assert loaded.images.dtype == torch.uint8 and loaded.images.shape == (60, 1, 28, 28)
    assert torch.equal(loaded.images, train)
    assert loaded.targets.tolist() == [d for d in range(10) for _ in range(6)]
    assert torch.equal(dm.load("test").images, test)


def test_cache_is_written_and_reused_without_the_folder(mnist_folder):
    data_dir, train, _ = mnist_folder
    MNISTDataModule(data_dir=str(data_dir)).prepare_data()
    assert (data_dir / "mnist" / "train.uint8.pt").is_file()
    for png in (data_dir / "mnist" / "train").rglob("*.png"):
        png.unlink()  # only the cache can provide the images now
    assert torch.equal(MNISTDataModule(data_dir=str(data_dir)).load("train").images, train)


def test_split_is_deterministic_and_depends_on_seed(mnist_folder):
    data_dir, _, _ = mnist_folder

    def val_images(seed):
        dm = MNISTDataModule(data_dir=str(data_dir), val_size=12, seed=seed)
        dm.setup()
        assert len(dm.splits["train"]) == 48 and len(dm.splits["test"]) == 20
        return dm.splits["val"].images

    assert torch.equal(val_images(0), val_images(0))
    assert not torch.equal(val_images(0), val_images(1))


def test_cifar100_subset_relabels_and_rejects_unknown_names(tmp_path):
    classes = ["apple", "bear", "castle", "dolphin"]
    for split in ("train", "test"):
        write_image_folder(tmp_path / "cifar100" / split, classes, 3, shape=(3, 32, 32))
    dm = CIFAR100DataModule(data_dir=str(tmp_path), classes=["dolphin", "apple"], val_size=2)
    assert dm.num_classes == 2
    test = dm.load("test")
    assert test.classes == ["dolphin", "apple"] and len(test) == 6
    assert sorted(set(test.targets.tolist())) == [0, 1]
    excluded = CIFAR100DataModule(data_dir=str(tmp_path), classes=classes, exclude=["bear"])
    assert excluded.load("train").classes == ["apple", "castle", "dolphin"]
    with pytest.raises(ValueError, match="dolphine"):
        CIFAR100DataModule(data_dir=str(tmp_path), exclude=["dolphine"])


def test_missing_dataset_offline_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ARCHIVES_ENV, raising=False)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(DatasetNotFoundError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert str(tmp_path / "mnist" / "train") in message and ARCHIVES_ENV in message
    assert "\n" not in message


def test_archive_in_env_folder_is_unpacked(tmp_path, monkeypatch):
    source = tmp_path / "src"
    write_image_folder(source / "mnist" / "train", ["0", "1"], 2, shape=(1, 28, 28))
    write_image_folder(source / "mnist" / "test", ["0", "1"], 1, shape=(1, 28, 28))
    archives = tmp_path / "archives"
    archives.mkdir()
    with tarfile.open(archives / "mnist.tar.gz", "w:gz") as tar:
        tar.add(source / "mnist", arcname="mnist")
    monkeypatch.setenv(ARCHIVES_ENV, str(archives))
    loaded = MNISTDataModule(data_dir=str(tmp_path / "data"), download=False).load("train")
    assert len(loaded) == 4 and (tmp_path / "data" / "mnist" / "train" / "0").is_dir()


def test_loader_yields_uint8_batches_and_transfer_makes_unit_floats():
    dm = FakeDataModule(image_shape=(3, 8, 8), train_size=100, val_size=20, batch_size=32)
    dm.setup()
    images, targets = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (32, 3, 8, 8) and targets.shape == (32,)
    floats, _ = dm.on_after_batch_transfer((images, targets), 0)
    assert floats.dtype == torch.float32 and floats.min() >= 0 and floats.max() <= 1
    assert torch.allclose(floats * 255, images.float())


def test_fake_data_is_seeded():
    a, b, c = (FakeDataModule(seed=s).load("train") for s in (0, 0, 1))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_batch_crop_and_flip_match_a_per_image_reference():
    torch.manual_seed(0)
    images = torch.rand(16, 3, 6, 6)
    out = BatchAugment(crop_padding=2, horizontal_flip=True)(images)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for original, augmented in zip(padded, out, strict=True):
        crops = [original[:, t : t + 6, s : s + 6] for t in range(5) for s in range(5)]
        candidates = crops + [c.flip(-1) for c in crops]
        assert any(torch.equal(augmented, c) for c in candidates)
    assert torch.equal(BatchAugment()(images), images)
    flipped = BatchAugment(horizontal_flip=True)(images)
    n_flipped = sum(torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images, strict=True))
    assert 0 < n_flipped < 16  # each image flipped independently


def test_cutout_zeroes_one_square_per_image_like_a_per_image_reference():
    images = torch.rand(64, 3, 12, 12) + 0.1  # no zero pixels before
    out = BatchAugment(cutout=4)(images, torch.Generator().manual_seed(0))
    for image, result in zip(images, out, strict=True):
        zeroed = (result == 0).all(dim=0)  # same pixels in every channel
        rows, cols = zeroed.nonzero(as_tuple=True)
        assert 1 <= len(rows) <= 16  # a 4×4 square, clipped at the border
        top, left, bottom, right = rows.min(), cols.min(), rows.max(), cols.max()
        expected = torch.zeros_like(zeroed)
        expected[top : bottom + 1, left : right + 1] = True
        assert torch.equal(zeroed, expected)  # one rectangle (a clipped square)
        assert bottom - top < 4 and right - left < 4
        assert torch.equal(result[:, ~zeroed], image[:, ~zeroed])  # the rest untouched
    full = (out == 0).all(dim=1).flatten(1).sum(dim=1)
    assert (full == 16).float().mean() > 0.3  # most squares lie inside the image
