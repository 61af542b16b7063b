"""``python -m common.data mnist cifar10 imagenette …``: fetch/unpack and decode datasets once
(cached; Imagenette at its default 32 px), and copy the pretrained weights of
``$DLA_DATA_ARCHIVES/weights/`` to ``<data_dir>/weights/``, where the configs name them."""

import argparse
import logging
import os
import shutil
from pathlib import Path

from common.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    ImagenetteDataModule,
    MNISTDataModule,
)
from common.paths import ARCHIVES_ENV

MODULES = {
    "mnist": MNISTDataModule,
    "cifar10": CIFAR10DataModule,
    "cifar100": CIFAR100DataModule,
    "imagenette": ImagenetteDataModule,
}


def copy_weights(data_dir: str) -> None:
    """Offline weight files → ``<data_dir>/weights/`` (an existing file is kept)."""
    source = Path(os.environ.get(ARCHIVES_ENV, ""), "weights")
    if not os.environ.get(ARCHIVES_ENV) or not source.is_dir():
        return
    target = Path(data_dir, "weights")
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and not (target / path.name).exists():
            shutil.copy(path, target / path.name)
            logging.info("weights: %s → %s", path, target / path.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="+", choices=sorted(MODULES))
    parser.add_argument("--data_dir", default="data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args.names:
        try:
            MODULES[name](data_dir=args.data_dir).prepare_data()
        except DatasetNotFoundError as error:
            raise SystemExit(f"error: {error}") from None
        logging.info("%s: ready in %s/%s", name, args.data_dir, name)
    copy_weights(args.data_dir)
