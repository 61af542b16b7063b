"""``StoryDataModule``: image files, folders and URLs for ``python -m lab3 predict``."""

from __future__ import annotations

import lightning as L
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch.utils.data import DataLoader, Dataset

from lab3.story.inputs import ImageInput, expand_sources, read_input, read_inputs


class ImageSources(Dataset):
    """Reads (or downloads) one source per item; a bad one becomes an item with its error. The
    DataLoader asks for a batch's items together (``__getitems__``): they are read at once."""

    def __init__(self, sources: list[str], timeout: float, max_bytes: int) -> None:
        self.sources, self.timeout, self.max_bytes = sources, timeout, max_bytes

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> ImageInput:
        return read_input(self.sources[index], self.timeout, self.max_bytes)

    def __getitems__(self, indices: list[int]) -> list[ImageInput]:
        sources = [self.sources[index] for index in indices]
        return read_inputs(sources, self.timeout, self.max_bytes)


class StoryDataModule(L.LightningDataModule):
    """Batches of :class:`~lab3.story.inputs.ImageInput` (PIL images: the processor makes tensors).

    Args:
        images: a file, a folder (its image files, recursively, sorted), a URL, or a list of them.
        batch_size: images per caption/story pass.
        num_workers: DataLoader processes reading and downloading images.
        timeout, max_bytes: limits for downloading an image URL (``timeout``: seconds for the
            whole download; a batch's URLs download at once).
    """

    def __init__(
        self,
        images: str | list[str],
        batch_size: PositiveInt = 16,
        num_workers: NonNegativeInt = 0,
        timeout: PositiveFloat = 10.0,
        max_bytes: PositiveInt = 20_000_000,
    ) -> None:
        super().__init__()
        self.sources = expand_sources(images)
        if not self.sources:
            raise ValueError("data.images is empty: give image files, folders or URLs")
        self.batch_size, self.num_workers = batch_size, num_workers
        self.dataset = ImageSources(self.sources, timeout, max_bytes)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=list
        )
