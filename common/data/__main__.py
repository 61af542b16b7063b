"""``python -m common.data mnist cifar10 imagenette …``: fetch/unpack and decode datasets once
(cached; Imagenette at its default 32 px)."""

import argparse
import logging

from common.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    ImagenetteDataModule,
    MNISTDataModule,
)

MODULES = {
    "mnist": MNISTDataModule,
    "cifar10": CIFAR10DataModule,
    "cifar100": CIFAR100DataModule,
    "imagenette": ImagenetteDataModule,
}

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
