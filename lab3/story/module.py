"""``StoryModule``: the LightningModule of ``python -m lab3 predict`` (caption → story per batch).

Precision and device come from the Trainer (``bf16-mixed`` autocasts ``predict_step``); the
writing of results is the :class:`~lab3.story.report.StoryReport` callback's.
"""

from __future__ import annotations

import lightning as L
from jsonargparse.typing import PositiveInt

from lab3.story.captioner import Captioner
from lab3.story.generator import ImageStoryGenerator, StoryResult
from lab3.story.inputs import ImageInput
from lab3.story.writer import PresetName, StoryWriter


class StoryModule(L.LightningModule):
    """Args: the captioner and writer, the story ``length`` (preset or tokens) and ``seed``
    (every image's story is drawn with it, so a story does not depend on its batch)."""

    def __init__(
        self,
        captioner: Captioner,
        writer: StoryWriter,
        length: PositiveInt | PresetName = "medium",
        seed: int = 0,
    ) -> None:
        super().__init__()
        writer.max_new_tokens(length)  # a bad length fails before any image is read
        self.save_hyperparameters(ignore=["captioner", "writer"])
        self.generator = ImageStoryGenerator(captioner, writer)

    def predict_step(self, batch: list[ImageInput], batch_idx: int = 0) -> list[StoryResult]:
        return self.generator.stories(batch, self.hparams.length, self.hparams.seed)
