"""A LightningDataModule over in-memory uint8 tensors.

Images are decoded once (see :mod:`common.data.sources`), kept in memory as uint8, and served
through a map-style ``Dataset`` whose ``__getitems__`` returns a whole batch with one indexing
operation. Because it is an ordinary ``Dataset``/``DataLoader``, Lightning's distributed sampler
shards it under DDP. After the batch reaches the model's device it becomes float in [0, 1] and,
while training, is augmented there in one batched operation. Normalisation is *not* done here:
it is the first layer of every network (:class:`common.models.Normalize`), so attacks, ODIN and
CAM all work in [0, 1] pixel space.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader, Dataset, RandomSampler

from common.data.augment import BatchAugment
from common.data.sources import DatasetNotFoundError, ImageTensors, load_split


class TensorImageDataset(Dataset):
    """Uint8 images and int64 targets; ``__getitems__`` fetches a batch in one indexing call.

    ``ids`` are the images' positions in their source split (file order), kept when the images
    are served in another order, so a sample can be chosen by identity (:meth:`by_ids`).
    """

    def __init__(
        self, images: torch.Tensor, targets: torch.Tensor, ids: torch.Tensor | None = None
    ) -> None:
        self.images = images
        self.targets = targets
        self.ids = torch.arange(len(targets)) if ids is None else ids

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.images[index], self.targets[index]

    def by_ids(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and targets of the given source positions, in the order of ``ids``."""
        position = torch.empty(int(self.ids.max()) + 1, dtype=torch.long)
        position[self.ids] = torch.arange(len(self.ids))
        index = position[ids]
        return self.images[index], self.targets[index]


class EpochSeededSampler(RandomSampler):
    """A random order that depends only on (seed, epoch), so a resumed run sees the same order.

    Lightning calls ``set_epoch`` before every epoch (also after resuming). Under DDP it swaps
    this for a ``DistributedSampler`` with ``shuffle=True``, which is epoch-seeded the same way.
    """

    def __init__(self, data_source: Dataset, seed: int) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


def batch_generator(seed: int, trainer: L.Trainer | None, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for the random draws of a training batch, seeded by (seed, rank,
    batches seen): a resumed run draws what it would have drawn, DDP ranks draw differently."""
    batches_seen = trainer.fit_loop.epoch_loop.batch_progress.total.ready if trainer else 0
    rank = trainer.global_rank if trainer else 0
    return torch.Generator(device).manual_seed(hash((seed, rank, batches_seen)) % 2**62)


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for :meth:`TensorImageDataset.__getitems__`, which already returns a batch."""
    return batch


class ImageDataModule(L.LightningDataModule):
    """Base class of the image-classification DataModules.

    A subclass sets the class attributes below and, for torchvision's files as a fallback
    source, :meth:`from_torchvision`; a synthetic dataset overrides :meth:`load` instead.

    Args:
        data_dir: root holding ``<name>/<split>/<class>/*`` folders and the tensor caches.
        batch_size: per-process batch size.
        val_size: images taken from the training split for validation (seeded, class-agnostic).
        seed: seed of the train/val split and of the test split's order (independent of the
            training seed). The test split is served in a fixed, seeded, class-mixed order
            (image folders are sorted by class), so any prefix of it (``limit_test_batches``)
            covers the classes; validation is a seeded random choice, mixed likewise.
        crop_padding: random-crop padding for training batches (0 = no crop).
        horizontal_flip: random horizontal flips for training batches.
        cutout: side of the square zeroed at a random place of each training image (0: none).
        num_workers: DataLoader workers; 0 is fastest for in-memory tensors.
        download: allow torchvision to download when no local copy exists.
    """

    name: str = ""  #: folder and cache name under ``data_dir``
    image_shape: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = ()  #: per-channel statistics of the training images
    std: tuple[float, ...] = ()
    default_classes: tuple[str, ...] = ()  #: class folder names in label order
    split_dirs: dict[str, str] = {"train": "train", "test": "test"}  #: folder of each split
    resize: int | None = None  #: resize image folders to resize × resize on decoding

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: PositiveInt = 128,
        val_size: NonNegativeInt = 5000,
        seed: int = 0,
        crop_padding: NonNegativeInt = 0,
        horizontal_flip: bool = False,
        cutout: NonNegativeInt = 0,
        num_workers: NonNegativeInt = 0,
        download: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.val_size = val_size
        self.seed = seed
        self.num_workers = num_workers
        self.download = download
        self.augment = BatchAugment(crop_padding, horizontal_flip, cutout)
        self.splits: dict[str, TensorImageDataset] = {}

    # --- what a subclass provides -------------------------------------------------------

    def from_torchvision(self, root: Path, train: bool, download: bool) -> ImageTensors:
        """Read torchvision's own files for this dataset (source 3 of :mod:`sources`)."""
        raise DatasetNotFoundError(f"torchvision has no loader for {self.name}")

    def select(self, tensors: ImageTensors) -> ImageTensors:
        """Hook to restrict a loaded split (e.g. to a subset of classes)."""
        return tensors

    def load(self, split: str) -> ImageTensors:
        """Return ``"train"`` or ``"test"`` as uint8 tensors (cached on disk by the sources)."""
        tensors = load_split(
            self.name,
            self.split_dirs[split],
            self.data_dir,
            self.image_shape[0],
            torchvision_loader=partial(self.from_torchvision, train=split == "train"),
            download=self.download,
            size=self.resize,
        )
        return self.select(tensors)

    # --- what the model needs to know ---------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.default_classes)

    @property
    def class_names(self) -> list[str]:
        """Readable class names in label order (for tables and figures)."""
        return list(self.default_classes)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of the training images, for the model's Normalize layer."""
        return self.mean, self.std

    # --- Lightning hooks ----------------------------------------------------------------
    def prepare_data(self) -> None:
        # Runs on one process per node: decodes and caches, so `setup` only reads the cache.
        for split in ("train", "test"):
            self.load(split)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train, test = self.load("train"), self.load("test")
        for split in (train, test):
            if split.classes != list(self.default_classes):
                raise ValueError(
                    f"{self.name}: class folders {split.classes} do not match the expected "
                    f"classes {list(self.default_classes)}; check the layout of "
                    f"{self.data_dir}/{self.name}"
                )
        if not 0 <= self.val_size < len(train):
            raise ValueError(f"val_size={self.val_size} must be in [0, {len(train)})")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        test_index = torch.randperm(len(test), generator=torch.Generator().manual_seed(self.seed))
        self.splits = {
            name: TensorImageDataset(split.images[index], split.targets[index], ids=index)
            for name, split, index in (
                ("train", train, train_index),
                ("val", train, val_index),
                ("test", test, test_index),
            )
        }

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.splits[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(dataset, self.seed) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=keep_batch,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def preprocessed_batches(
        self, images: torch.Tensor, device: torch.device | str
    ) -> Iterator[torch.Tensor]:
        """uint8 images (any set, e.g. an OOD one) → batches on ``device`` preprocessed like the
        evaluation batches, for work outside the Trainer's loops (fitting and tuning detectors)."""
        for part in images.split(self.batch_size):
            yield self.on_after_batch_transfer((part.to(device), None), 0)[0]

    def on_after_batch_transfer(
        self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = batch
        images = images.float().div_(255)
        if self.augment.active and self.trainer is not None and self.trainer.training:
            images = self.augment(images, batch_generator(self.seed, self.trainer, images.device))
        return images, targets
