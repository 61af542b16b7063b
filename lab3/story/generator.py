"""``ImageStoryGenerator``: image → caption → story, the Python API of Lab 3.

from lab3 import ImageStoryGenerator
gen = ImageStoryGenerator()                 # BLIP base captioner + TinyStories-33M
result = gen.generate("bear.jpg", length="medium", seed=0)
result.caption, result.story, result.word_count
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from torch import nn

from lab3.story.captioner import Captioner
from lab3.story.inputs import ImageInput, expand_sources, load_image, read_inputs
from lab3.story.writer import StoryWriter


@dataclass
class StoryResult:
    """What one image gave: caption and story, or the error that stopped it."""

    source: str
    caption: str | None = None
    story: str | None = None
    seed: int | None = None
    error: str | None = None

    @property
    def word_count(self) -> int:
        return len(self.story.split()) if self.story else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "word_count": self.word_count}


class ImageStoryGenerator(nn.Module):
    """A captioner and a story writer (defaults: their hub models); move it with ``.to(device)``.

    The same image, settings and seed give the same story on the same kind of device, alone or in
    a batch of any size (see :mod:`lab3.story.writer` for what exactly is guaranteed). ``seed=None``
    draws a seed and reports it in the result, so any story can be written again.

    Args:
        captioner, writer: ``None`` builds the default one.
        timeout, max_bytes: limits for downloading an image URL (``timeout``: seconds for the
            whole download; a batch's URLs download at once).
    """

    def __init__(
        self,
        captioner: Captioner | None = None,
        writer: StoryWriter | None = None,
        timeout: float = 10.0,
        max_bytes: int = 20_000_000,
    ) -> None:
        super().__init__()
        self.captioner = captioner or Captioner()
        self.writer = writer or StoryWriter()
        self.timeout, self.max_bytes = timeout, max_bytes

    def generate(
        self, image: str | Path | Image.Image, length: str | int = "medium", seed: int | None = None
    ) -> StoryResult:
        """One story; a bad image raises :class:`~lab3.story.inputs.ImageInputError` naming it."""
        self.writer.max_new_tokens(length)  # a bad length fails before any download
        if isinstance(image, Image.Image):
            item = ImageInput("<PIL image>", image.convert("RGB"), None)
        else:
            item = ImageInput(str(image), load_image(image, self.timeout, self.max_bytes), None)
        return self.stories([item], length, seed)[0]

    def generate_batch(
        self,
        images: str | Path | Iterable[str | Path],
        length: str | int = "medium",
        seed: int | None = None,
        batch_size: int = 16,
    ) -> list[StoryResult]:
        """Stories for files, folders and URLs; a bad input gets its ``error``, not an exception."""
        self.writer.max_new_tokens(length)
        seed = _draw_seed() if seed is None else seed
        sources = expand_sources(images)
        results = []
        for start in range(0, len(sources), batch_size):
            items = read_inputs(sources[start : start + batch_size], self.timeout, self.max_bytes)
            results += self.stories(items, length, seed)
        return results

    def stories(
        self, items: list[ImageInput], length: str | int, seed: int | None
    ) -> list[StoryResult]:
        """Caption and story for the readable items of a batch, in one batched pass each."""
        seed = _draw_seed() if seed is None else seed
        readable = [item for item in items if item.image is not None]
        captions = self.captioner([item.image for item in readable]) if readable else []
        stories = self.writer(captions, length, [seed] * len(captions)) if captions else []
        told = iter(zip(captions, stories, strict=True))
        return [
            StoryResult(item.source, error=item.error)
            if item.image is None
            else StoryResult(item.source, *next(told), seed=seed)
            for item in items
        ]


def _draw_seed() -> int:
    return random.SystemRandom().randrange(2**31)
