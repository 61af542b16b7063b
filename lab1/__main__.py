"""``python -m lab1 fit|validate|test|predict|sweep|baseline|cam --config configs/lab1/...yaml``."""

from common.cli import main

if __name__ == "__main__":
    main("lab1")
