"""The DataModule under DDP: two CPU processes each see their own half of the data."""

import json
from functools import partial
from pathlib import Path

import lightning as L

from common.classifier import ImageClassifier
from common.data import FakeDataModule
from lab1.models import MLP
from tests.conftest import tiny_trainer


def two_processes(tmp_path: Path, callback: L.Callback, max_epochs: int) -> L.Trainer:
    """A Trainer of two spawned CPU processes (gloo), no logger, checkpoints or bars."""
    return tiny_trainer(
        tmp_path,
        devices=2,
        strategy="ddp_spawn",
        max_epochs=max_epochs,
        callbacks=[callback],
        limit_train_batches=None,
        limit_val_batches=None,
    )


class RecordTargets(L.Callback):
    """Writes, per rank, the indices-free fingerprint of every training batch it saw."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        images, _ = batch
        # batches arrive as floats in [0, 1]; the sum of the original bytes identifies an image
        self.seen += images.mul(255).round().flatten(1).sum(1).long().tolist()

    def on_train_end(self, trainer, pl_module):
        with open(f"{self.out_dir}/rank{trainer.global_rank}.json", "w") as f:
            json.dump(self.seen, f)


def test_ddp_shards_the_training_set_between_two_processes(tmp_path):
    data = FakeDataModule(
        image_shape=(1, 8, 8), num_classes=3, train_size=96, val_size=32, batch_size=8
    )
    model = ImageClassifier(
        MLP((1, 8, 8), 3, width=8, depth=2), num_classes=3, normalization=((0.5,), (0.29,))
    )
    trainer = two_processes(tmp_path, RecordTargets(str(tmp_path)), max_epochs=1)
    trainer.fit(model, data)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    data.setup()
    everything = data.splits["train"].images.flatten(1).sum(1).long().tolist()
    assert len(rank0) == len(rank1) == 32
    assert sorted(rank0 + rank1) == sorted(everything)


class RecordWindows(L.Callback):
    """Appends, per rank, every training window it saw to ``<out_dir>/rank<N>.json``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        inputs, _ = batch
        path = Path(self.out_dir, f"rank{trainer.global_rank}.json")
        seen = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(seen + inputs.tolist()))


def test_lab2_fits_on_two_processes_with_one_sample_per_validation(tmp_path):
    """Lab 2 under DDP: the ranks draw different windows, and the sample of each validation
    (written by rank 0 only, after a collective ``log_dir``) is written once."""
    from lab2.data import TextDataModule
    from lab2.models import CharGPT
    from lab2.module import CharLanguageModel

    text = tmp_path / "verses.txt"
    text.write_text(
        "Nel mezzo del cammin di nostra vita\n  mi ritrovai per una selva oscura\n" * 40
    )
    data = TextDataModule(str(text), context=8, batch_size=4, batches_per_epoch=4)

    model = CharLanguageModel(
        data.vocabulary,
        partial(CharGPT, context=8, layers=1, heads=1, width=8),
        sample_length=5,
    )
    trainer = two_processes(tmp_path, RecordWindows(str(tmp_path)), max_epochs=2)
    trainer.fit(model, data)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert len(rank0) == len(rank1) == 2 * 2 * 4  # 2 epochs x 2 of the 4 batches x 4 windows
    assert rank0 != rank1
    samples = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert samples == ["step_000002.txt", "step_000004.txt"]
