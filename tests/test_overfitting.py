"""The catastrophic-overfitting monitor: PGD accuracy on fixed validation images every epoch, a
warning (and optionally a stop) when it collapses while clean accuracy does not."""

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from common.classifier import ImageClassifier
from common.data import FakeDataModule
from lab4.models import SimpleCNN
from lab4.overfitting import CatastrophicOverfittingMonitor


def fit(tmp_path, monitor: CatastrophicOverfittingMonitor, epochs: int) -> L.Trainer:
    """A tiny classifier on FakeData, checkpointing on ``val/pgd_acc``; returns the Trainer."""
    L.seed_everything(0)
    data = FakeDataModule(
        image_shape=(3, 8, 8), num_classes=3, train_size=96, val_size=32, batch_size=16
    )
    module = ImageClassifier(
        SimpleCNN((4, 8), num_classes=3), num_classes=3, normalization=data.normalization
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path, name="", version=""),
        callbacks=[monitor, ModelCheckpoint(tmp_path, monitor="val/pgd_acc", mode="max")],
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, data)
    return trainer


def logged(tmp_path, key: str) -> list[float]:
    with open(tmp_path / "metrics.csv") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def test_logs_pgd_accuracy_of_the_same_images_every_epoch(tmp_path):
    monitor = CatastrophicOverfittingMonitor(radius=8, steps=3, num_images=20)
    trainer = fit(tmp_path, monitor, epochs=2)
    pgd, clean = logged(tmp_path, "val/pgd_acc"), logged(tmp_path, "val/pgd_clean_acc")
    assert len(pgd) == len(clean) == 2  # one per epoch, none for the sanity check
    assert all(0 <= p <= 1 for p in pgd + clean)
    assert trainer.checkpoint_callback.best_model_score == max(pgd)
    images, labels = monitor.validation_images(trainer)
    assert len(labels) == 20 and images.dtype == torch.uint8
    val = trainer.datamodule.splits["val"]
    assert all((val.images == image).flatten(1).all(1).any() for image in images)  # from val
    # independent clean accuracy of the final network on those images
    model = trainer.lightning_module.eval()
    with torch.no_grad():
        predicted = model(images.float() / 255).argmax(1)
    assert clean[-1] == pytest.approx((predicted == labels).float().mean().item())
    # the measure is deterministic (same images, same seeded start), and PGD with a radius
    # that covers the whole image space fools every image
    again = monitor.measure(trainer, model)
    assert again == monitor.measure(trainer, model)
    assert again == pytest.approx({"pgd_acc": pgd[-1], "clean_acc": clean[-1]})
    whole = CatastrophicOverfittingMonitor(radius=255, steps=10, step_size=64, num_images=20)
    assert whole.measure(trainer, model)["pgd_acc"] == 0.0


class ScriptedMonitor(CatastrophicOverfittingMonitor):
    """The monitor with scripted accuracies per epoch (a network whose PGD accuracy collapses
    at the third epoch while its clean accuracy goes on rising)."""

    script = [(0.40, 0.50), (0.45, 0.60), (0.02, 0.70), (0.01, 0.75), (0.01, 0.80)]

    def measure(self, trainer, model):
        pgd, clean = self.script[trainer.current_epoch]
        return {"pgd_acc": pgd, "clean_acc": clean}


def test_a_collapse_warns_and_training_goes_on(tmp_path):
    with pytest.warns(UserWarning, match="catastrophic overfitting") as warnings:
        trainer = fit(tmp_path, ScriptedMonitor(), epochs=4)
    assert trainer.current_epoch == 4 and not trainer.should_stop  # no stop asked
    messages = [str(w.message) for w in warnings if "catastrophic" in str(w.message)]
    assert [m.split(":")[0] for m in messages] == [
        f"catastrophic overfitting at epoch {epoch}" for epoch in (2, 3)
    ]
    assert logged(tmp_path, "val/pgd_acc") == pytest.approx([0.40, 0.45, 0.02, 0.01])


def test_stop_on_collapse_stops_after_that_epoch_and_keeps_the_best_checkpoint(tmp_path):
    with pytest.warns(UserWarning, match="catastrophic overfitting at epoch 2"):
        trainer = fit(tmp_path, ScriptedMonitor(stop_on_collapse=True), epochs=5)
    assert trainer.should_stop and trainer.current_epoch == 3  # epochs 0, 1, 2 run
    assert logged(tmp_path, "val/pgd_acc") == pytest.approx([0.40, 0.45, 0.02])
    best = trainer.checkpoint_callback
    assert best.best_model_score.item() == pytest.approx(0.45)
    assert torch.load(best.best_model_path, weights_only=True)["epoch"] == 1


@pytest.mark.parametrize(
    ("best", "now", "collapsed"),
    [
        ((0.40, 0.60), (0.19, 0.65), True),  # Wong et al.'s failure: PGD ~0, clean up
        ((0.40, 0.60), (0.21, 0.65), False),  # above half the best
        ((0.40, 0.60), (0.10, 0.25), False),  # both fell: divergence, not overfitting
        ((0.08, 0.60), (0.00, 0.65), False),  # best under min_best_pgd_acc: noise
    ],
)
def test_collapse_needs_pgd_accuracy_down_and_clean_accuracy_not(best, now, collapsed):
    monitor = CatastrophicOverfittingMonitor()
    monitor.load_state_dict({"pgd_acc": best[0], "clean_acc": best[1]})
    assert monitor.collapsed({"pgd_acc": now[0], "clean_acc": now[1]}) is collapsed


def test_the_best_accuracies_travel_in_checkpoints():
    monitor = CatastrophicOverfittingMonitor()
    monitor.best = {"pgd_acc": 0.4, "clean_acc": 0.7}
    restored = CatastrophicOverfittingMonitor()
    restored.load_state_dict(monitor.state_dict())
    assert restored.best == monitor.best
    assert monitor.state_key != CatastrophicOverfittingMonitor(radius=4).state_key
    with pytest.raises(ValueError, match="collapse_ratio"):
        CatastrophicOverfittingMonitor(collapse_ratio=1.5)
