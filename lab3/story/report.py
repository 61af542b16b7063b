"""``StoryReport``: writes ``stories.jsonl`` and a browsable ``stories.md`` into the run folder.

One JSON line per input, in input order, written after each batch (a stopped run keeps what it
made): ``source``, ``caption``, ``story``, ``word_count``, ``seed``, ``error`` (``null`` unless
the input could not be read) and ``image`` (the thumbnail shown in ``stories.md``, saved under
``images/`` so that the report survives a moved folder or a dead URL).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from jsonargparse.typing import PositiveInt
from lightning.pytorch.callbacks import BasePredictionWriter

from lab3.story.generator import StoryResult
from lab3.story.inputs import ImageInput


class StoryReport(BasePredictionWriter):
    """Args: ``output_dir`` (``None``: the Trainer's ``default_root_dir``, the run folder) and
    ``thumbnail_size`` (longest side of the saved images, in pixels)."""

    def __init__(self, output_dir: str | None = None, thumbnail_size: PositiveInt = 384) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.thumbnail_size = output_dir, thumbnail_size
        self.records: list[dict] = []
        self.folder = Path(output_dir or ".")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder, self.records = Path(self.output_dir or trainer.default_root_dir), []
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        (self.folder / "stories.jsonl").write_text("")

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: list[StoryResult],
        batch_indices,
        batch: list[ImageInput],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        lines = []
        for item, result in zip(batch, prediction, strict=True):
            record = {**result.to_dict(), "image": None}
            if item.image is not None:
                record["image"] = f"images/{len(self.records):04d}.jpg"
                thumbnail = item.image.copy()
                thumbnail.thumbnail((self.thumbnail_size, self.thumbnail_size))
                thumbnail.save(self.folder / record["image"], quality=90)
            self.records.append(record)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        with open(self.folder / "stories.jsonl", "a", encoding="utf-8") as file:
            file.writelines(lines)

    @property
    def stories(self) -> int:
        """How many inputs got a story (the others could not be read)."""
        return sum(record["error"] is None for record in self.records)

    def summary(self) -> str:
        """The run in one line: how many stories, where, and how many inputs failed."""
        total, failed = len(self.records), len(self.records) - self.stories
        details = self.folder / "stories.jsonl"
        if not self.stories:
            none = "the input could not" if total == 1 else f"none of the {total} inputs could"
            return f"{none} be read: see {details}"
        if failed:
            outcome = f"{failed} of {total} inputs failed: see {details}"
        else:
            outcome = "1 input read" if total == 1 else f"all {total} inputs read"
        told = "1 story" if self.stories == 1 else f"{self.stories} stories"
        return f"{told} written to {self.folder / 'stories.md'} ({outcome})"

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        errors = len(self.records) - self.stories
        parts = [
            "# Stories\n",
            f"{len(self.records)} inputs: {len(self.records) - errors} stories, {errors} errors.\n",
        ]
        for number, record in enumerate(self.records, 1):
            parts.append(f"## {number}. `{record['source']}`\n")
            if record["error"] is not None:
                parts.append(f"**Error:** {record['error']}\n")
                continue
            parts += [
                f"![{record['caption']}]({record['image']})\n",
                f"**Caption:** {record['caption']}\n",
                f"{record['story']}\n",
                f"*{record['word_count']} words, seed {record['seed']}*\n",
            ]
        (self.folder / "stories.md").write_text("\n".join(parts), encoding="utf-8")
