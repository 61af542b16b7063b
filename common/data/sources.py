"""Where a dataset's pixels come from, decoded once into uint8 tensors.

Sources are tried in this order:

1. an image-folder layout ``data_dir/<name>/<split>/<class>/*`` (what ``shared/data/install``
   produces and what users with their own copies have);
2. an archive ``<name>.tar.gz`` in the folder named by ``$DLA_DATA_ARCHIVES`` (offline machines),
   unpacked into ``data_dir`` and then read as 1.;
3. torchvision's own files under ``data_dir/<name>/torchvision``, downloaded when online.

Whatever the source, the decoded split is cached as ``data_dir/<name>/<split>.uint8.pt`` (or
``<split>.<size>px.uint8.pt`` when images are resized on decoding) so that the next run loads it in
a fraction of a second.
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from common.paths import ARCHIVES_ENV

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CACHE_FORMAT = 1


class DatasetNotFoundError(RuntimeError):
    """Raised when no source can provide a dataset; the message says where to put it."""


@dataclass
class ImageTensors:
    """A decoded split: ``images`` uint8 (N, C, H, W), ``targets`` int64 (N,), class names."""

    images: torch.Tensor
    targets: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, keep_classes: list[str]) -> ImageTensors:
        """Keep only ``keep_classes`` (in that order) and relabel them 0..k-1."""
        unknown = sorted(set(keep_classes) - set(self.classes))
        if unknown:
            raise ValueError(f"unknown class names {unknown}; valid names: {self.classes}")
        old_to_new = torch.full((len(self.classes),), -1, dtype=torch.long)
        for new, name in enumerate(keep_classes):
            old_to_new[self.classes.index(name)] = new
        new_targets = old_to_new[self.targets]
        keep = new_targets >= 0
        return ImageTensors(self.images[keep], new_targets[keep], list(keep_classes))


def _list_image_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files, targets = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        targets += [label] * len(found)
    return files, targets, classes


def read_image(path: str | Path, channels: int = 3, size: int | None = None) -> torch.Tensor:
    """One image file as uint8 (C, H, W); with ``size``, resized (shorter side) and centre-cropped
    to ``size × size``."""
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    image = decode_image(str(path), mode=mode, apply_exif_orientation=True)
    if size is not None:
        image = F.center_crop(F.resize(image, [size], antialias=True), [size, size])
    return image


def decode_image_folder(
    root: Path, channels: int, size: int | None = None, workers: int | None = None
) -> ImageTensors:
    """Decode every image of an ImageFolder root into one uint8 tensor.

    Decoding uses ``torchvision.io`` (libpng/libjpeg in C++, GIL released) on a thread pool.
    With ``size``, each image is resized (shorter side, antialiased) and centre-cropped to
    ``size × size`` right after decoding, so images of any size stack into one tensor.
    """
    files, targets, classes = _list_image_folder(root)
    if not files:
        raise DatasetNotFoundError(f"no images under {root}; expected {root}/<class>/*.png|jpg")

    def decode(path: Path) -> torch.Tensor:
        return read_image(path, channels, size)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        images = list(pool.map(decode, files, chunksize=256))
    return ImageTensors(torch.stack(images), torch.tensor(targets, dtype=torch.long), classes)


def unpack_archive(name: str, data_dir: Path) -> bool:
    """Unpack ``$DLA_DATA_ARCHIVES/<name>.tar.gz`` into ``data_dir``; False when there is none."""
    archives = os.environ.get(ARCHIVES_ENV)
    if not archives or not (Path(archives) / f"{name}.tar.gz").is_file():
        return False
    archive = Path(archives) / f"{name}.tar.gz"
    log.info("unpacking %s into %s", archive, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(data_dir, filter="data")
    return True


def load_split(
    name: str,
    split: str,
    data_dir: str | Path,
    channels: int,
    torchvision_loader: Callable[[Path, bool], ImageTensors] | None = None,
    download: bool = True,
    size: int | None = None,
) -> ImageTensors:
    """Return a split as uint8 tensors, from the cache or the first source that has it.

    ``torchvision_loader(root, download)`` reads torchvision's own files (source 3); ``size``
    resizes image folders on decoding (see :func:`decode_image_folder`).
    """
    dataset_dir = Path(data_dir) / name
    cache = dataset_dir / (f"{split}.uint8.pt" if size is None else f"{split}.{size}px.uint8.pt")
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if saved.get("format") == CACHE_FORMAT:
            return ImageTensors(saved["images"], saved["targets"], list(saved["classes"]))
        log.warning("ignoring stale cache %s", cache)

    folder = dataset_dir / split
    if not folder.is_dir():
        unpack_archive(name, Path(data_dir))
    if folder.is_dir():
        tensors = decode_image_folder(folder, channels, size)
    elif torchvision_loader is not None:
        try:
            tensors = torchvision_loader(root=dataset_dir / "torchvision", download=download)
        except (RuntimeError, OSError) as error:  # urllib errors are OSErrors
            raise DatasetNotFoundError(
                f"{name} is not in {folder} and could not be downloaded ({error.__class__.__name__}"
                f"). Offline: put image folders at {folder}/<class>/*, or set {ARCHIVES_ENV} to a "
                f"folder holding {name}.tar.gz (e.g. ../shared/data)."
            ) from None
    else:
        raise DatasetNotFoundError(
            f"{name} is not in {folder}: put image folders there, or set {ARCHIVES_ENV} to a "
            f"folder holding {name}.tar.gz."
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save(
        {
            "format": CACHE_FORMAT,
            "images": tensors.images,
            "targets": tensors.targets,
            "classes": tensors.classes,
        },
        tmp,
    )
    tmp.replace(cache)  # atomic: a killed run never leaves a half-written cache
    return tensors
