"""Lab 3, first edition: image → caption → story (Python API, predict, interactive, app)."""

from lab3.story.captioner import Captioner
from lab3.story.generator import ImageStoryGenerator, StoryResult
from lab3.story.inputs import ImageInputError
from lab3.story.writer import StoryWriter

__all__ = ["Captioner", "ImageInputError", "ImageStoryGenerator", "StoryResult", "StoryWriter"]
