"""``TextDataModule``: a UTF-8 text as character ids, served as windows of ``context + 1``.

The vocabulary is the sorted set of the file's characters (:class:`Vocabulary`); the model keeps
it in its checkpoint, so sampling needs no data.

The split is contiguous: the first ``1 - val_fraction - test_fraction`` of the text trains, then
comes the validation part, then the test part, each cut moved to the next line start so no verse
is split. Contiguous, because the windows of a random split would overlap the held-out text: a
model would be scored on lines it had trained on. For Dante's Inferno the default (5 % + 5 %)
holds out the end of Canto XXXI through Canto XXXIV.

Training batches are ``batch_size`` random windows of the training part, drawn on the model's
device after the batch "arrives" (the DataLoader only counts batches), from a generator seeded by
(seed, rank, batches seen): a resumed run draws the same windows, and DDP ranks draw different
ones. An epoch is ``batches_per_epoch`` batches (default: as many characters as the training
part holds), so ``max_epochs``, checkpoints and resume behave as in the other labs. Validation
and test read their part once, as consecutive non-overlapping windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from jsonargparse.typing import PositiveInt
from torch.utils.data import DataLoader

from common.data.datamodule import batch_generator
from common.data.sources import DatasetNotFoundError, unpack_archive

#: the course's text: ``make data`` (or ``../shared/data/install data dante``) puts it here
DANTE = "data/dante/inferno.txt"


class TextError(ValueError):
    """A text that cannot be used: the message says what to do."""


@dataclass(frozen=True)
class Vocabulary:
    """Characters ↔ ids: id ``i`` is the ``i``-th character of ``characters`` (sorted)."""

    characters: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.characters)

    def encode(self, text: str) -> torch.Tensor:
        """Ids (int64) of ``text``; a character outside the vocabulary is named in the error."""
        index = {character: i for i, character in enumerate(self.characters)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise TextError(
                f"characters not in the model's vocabulary: {''.join(unknown)!r}; use only "
                f"{self.characters!r}"
            )
        return torch.tensor([index[character] for character in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.characters[i] for i in torch.as_tensor(ids).tolist())


def read_text(path: str | Path) -> str:
    """The whole file as text, or one clear error (missing, empty, not UTF-8). The course's
    text is unpacked from ``$DLA_DATA_ARCHIVES/dante.tar.gz`` when it is missing."""
    path = Path(path)
    if not path.is_file() and path.parts[-2:] == Path(DANTE).parts[-2:]:
        unpack_archive("dante", path.parent.parent)
    if not path.is_file():
        hint = (
            "run `make data` (or ../shared/data/install data dante)"
            if path.name == Path(DANTE).name
            else "give an existing UTF-8 text file with --data.path"
        )
        raise DatasetNotFoundError(f"text file {path} does not exist: {hint}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TextError(
            f"{path} is not UTF-8 text (byte {error.start}: {raw[error.start]:#04x}); convert it, "
            f"e.g. iconv -f latin1 -t utf-8 {path.name}"
        ) from None
    if not text.strip():
        raise TextError(f"{path} is empty: give a text to learn from")
    return text


def line_cut(text: str, fraction: float) -> int:
    """The start of the first line at or after ``fraction`` of ``text``."""
    position = round(len(text) * fraction)
    newline = text.find("\n", position)
    return len(text) if newline < 0 else newline + 1


class TextDataModule(L.LightningDataModule):
    """Character windows of a text file (see the module's docstring).

    Args:
        path: a UTF-8 text file.
        context: characters per window (the model predicts each one's successor); the CLI
            passes it to the model.
        batch_size: windows per batch.
        batches_per_epoch: training batches per epoch; ``None``: ``len(train) // (batch_size ·
            context)``, about one pass over the training characters.
        val_fraction, test_fraction: the held-out parts at the end of the text.
        seed: of the training windows.
    """

    def __init__(
        self,
        path: str = DANTE,
        context: PositiveInt = 256,
        batch_size: PositiveInt = 64,
        batches_per_epoch: PositiveInt | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if min(val_fraction, test_fraction) <= 0 or val_fraction + test_fraction >= 1:
            raise TextError(
                f"val_fraction {val_fraction} and test_fraction {test_fraction} must be > 0 "
                "and leave text to train on"
            )
        self.path, self.context, self.batch_size = path, context, batch_size
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self._batches_per_epoch = batches_per_epoch
        self.splits: dict[str, torch.Tensor] = {}
        self._vocabulary: Vocabulary | None = None
        self._on_device: dict[torch.device, torch.Tensor] = {}

    @property
    def vocabulary(self) -> str:
        """The text's characters, sorted (the CLI passes them to the model)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.of(read_text(self.path))
        return self._vocabulary.characters

    def prepare_data(self) -> None:
        read_text(self.path)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        text = read_text(self.path)
        vocabulary = Vocabulary.of(text)
        self._vocabulary = vocabulary
        val_start = line_cut(text, 1 - self.val_fraction - self.test_fraction)
        test_start = line_cut(text, 1 - self.test_fraction)
        parts = {
            "train": text[:val_start],
            "val": text[val_start:test_start],
            "test": text[test_start:],
        }
        for name, part in parts.items():
            if len(part) < self.context + 1:
                raise TextError(
                    f"{self.path}: its {name} part has {len(part)} characters, fewer than one "
                    f"window of context + 1 = {self.context + 1}: give a longer text or a "
                    "smaller --data.context"
                )
        self.splits = {name: vocabulary.encode(part) for name, part in parts.items()}

    @property
    def batches_per_epoch(self) -> int:
        if self._batches_per_epoch is not None:
            return self._batches_per_epoch
        return max(1, len(self.splits["train"]) // (self.batch_size * self.context))

    def train_dataloader(self) -> DataLoader:
        # items are batch numbers only; the windows are drawn on the device (see below)
        return DataLoader(torch.arange(self.batches_per_epoch), batch_size=None)

    def _held_out(self, name: str) -> DataLoader:
        ids = self.splits[name]
        count = (len(ids) - 1) // self.context
        starts = torch.arange(count) * self.context
        windows = ids[starts[:, None] + torch.arange(self.context + 1)]
        return DataLoader(windows, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._held_out("val")

    def test_dataloader(self) -> DataLoader:
        return self._held_out("test")

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int):
        """A training batch (a batch number) → ``(inputs, targets)`` of random windows, drawn
        on the batch's device; a held-out batch of windows → ``(inputs, targets)``."""
        if batch.ndim == 0:
            batch = self.random_windows(batch.device)
        return batch[:, :-1], batch[:, 1:]

    def random_windows(self, device: torch.device) -> torch.Tensor:
        ids = self._on_device.get(device)
        if ids is None:
            ids = self._on_device[device] = self.splits["train"].to(device)
        generator = batch_generator(self.seed, self.trainer, device)
        starts = torch.randint(
            len(ids) - self.context, (self.batch_size, 1), generator=generator, device=device
        )
        return ids[starts + torch.arange(self.context + 1, device=device)]
