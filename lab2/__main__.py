"""``python -m lab2 fit|validate|test|generate|export|sweep --config configs/lab2/...yaml``."""

from common.cli import main

if __name__ == "__main__":
    main("lab2")
