"""Shared fixtures: tiny image folders, and W&B switched off so tests stay offline and fast."""

from __future__ import annotations

import os
from pathlib import Path

# before torch loads (see common/__init__.py): idle OpenMP threads sleep, also beside a busy job
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from torchvision.io import write_png

os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("DLA_DATA_DIR", REPO / "data"))
if (REPO.parent / "shared" / "data").is_dir():  # this team's offline archives and weights
    os.environ.setdefault("DLA_DATA_ARCHIVES", str(REPO.parent / "shared" / "data"))


def tiny_trainer(default_root_dir: Path | None = None, trainer_class=None, **kwargs):
    """A CPU Trainer (Lightning's, or ``trainer_class``) for module-level tests: two short
    epochs, no logger, checkpoints or bars (``kwargs`` override)."""
    import lightning as L

    options = dict(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=default_root_dir,
    )
    return (trainer_class or L.Trainer)(**{**options, **kwargs})


def write_image_folder(root: Path, classes: list[str], per_class: int, shape=(3, 8, 8), seed=0):
    """Write random PNGs as ``root/<class>/<i>.png``; returns the uint8 images in folder order."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (len(classes) * per_class, *shape), generator=generator, dtype=torch.uint8
    )
    for c, name in enumerate(sorted(classes)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write_png(images[c * per_class + i], str(root / name / f"{i:03d}.png"))
    return images


@pytest.fixture
def real_data_dir() -> Path:
    """The unpacked ../shared/data (``make data``); CI always has it."""
    if not (REAL_DATA / "mnist" / "train").is_dir():
        pytest.skip(f"real data not unpacked in {REAL_DATA}: run `make data`")
    return REAL_DATA


@pytest.fixture
def ood_folders(tmp_path) -> Path:
    """Tiny CIFAR-10, CIFAR-100, MNIST and Imagenette folders (the OOD DataModule's sources)."""
    from common.data.datasets import CIFAR100_CLASSES, IMAGENETTE_CLASSES
    from lab4.data import OODDataModule

    for split, n in (("train", 2), ("test", 1)):
        write_image_folder(
            tmp_path / "cifar10" / split, list(OODDataModule.default_classes), n, (3, 32, 32)
        )
        write_image_folder(tmp_path / "cifar100" / split, list(CIFAR100_CLASSES), n, (3, 32, 32))
        write_image_folder(tmp_path / "mnist" / split, [str(d) for d in range(10)], n, (1, 28, 28))
    for split, n in (("train", 2), ("val", 1)):
        write_image_folder(
            tmp_path / "imagenette" / split, list(IMAGENETTE_CLASSES), n, (3, 40, 52)
        )
    return tmp_path
