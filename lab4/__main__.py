"""``python -m lab4 fit|validate|test|predict|sweep|odin --config configs/lab4/...yaml``."""

from common.cli import main

if __name__ == "__main__":
    main("lab4")
