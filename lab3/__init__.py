"""Lab 3: image → caption → story (predict, interactive, app), and RL agents (fit, validate, test).

The story edition is ``lab3.story``, the reinforcement-learning one ``lab3.rl``.
"""

from common.commands import Command
from lab3.story.generator import ImageStoryGenerator, StoryResult
from lab3.story.inputs import ImageInputError

#: the LightningCLI class of ``python -m lab3``, imported when the CLI runs
CLI = "lab3.cli.Lab3CLI"

#: commands of ``python -m lab3`` besides ``predict`` and ``sweep``
COMMANDS = {
    "interactive": Command(
        "ask for an image and a length, print its story, repeat", "lab3.story.interactive"
    ),
    "app": Command("a web page: an image in, its caption and story out (Gradio)", "lab3.story.app"),
}

__all__ = ["CLI", "COMMANDS", "ImageInputError", "ImageStoryGenerator", "StoryResult"]
