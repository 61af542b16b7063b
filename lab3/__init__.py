"""Lab 3: image → caption → story on transformers: Python API, predict, interactive."""

from lab3.cli import StoryCLI
from lab3.generator import ImageStoryGenerator, StoryResult
from lab3.inputs import ImageInputError

#: the LightningCLI class of ``python -m lab3`` (see ``common.cli.main``)
CLI = StoryCLI

#: commands of ``python -m lab3`` besides LightningCLI's and ``sweep`` (name → module with ``main``)
COMMANDS = {"interactive": "lab3.interactive"}

__all__ = ["CLI", "COMMANDS", "ImageInputError", "ImageStoryGenerator", "StoryCLI", "StoryResult"]
