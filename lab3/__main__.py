"""``python -m lab3 predict --config configs/lab3/story.yaml``, ``python -m lab3 interactive``."""

from common.cli import main

if __name__ == "__main__":
    main("lab3")
