"""``trainer.threads``: one CPU thread for a small network, the usable cores for a large one,
chosen before the first training step; idle OpenMP threads sleep."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common import threads as threads_module
from common.threads import ThreadChoice, resolve_threads, usable_cores
from common.trainer import LabTrainer
from tests.conftest import REPO, tiny_trainer

SMALL, LARGE = 1e6, 1e12  # floating-point operations per batch


@pytest.fixture
def eight_cores(monkeypatch):
    """This process may run on 8 cores, and no OMP_NUM_THREADS limits it."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_gives_a_small_network_one_thread_and_a_large_one_every_usable_core(eight_cores):
    assert resolve_threads("auto", SMALL)[0] == 1
    assert resolve_threads("auto", LARGE) == (
        8,
        "a large network (1e+03 GFLOP per batch) on 8 usable core(s)",
    )
    assert resolve_threads("auto", LARGE, processes=2)[0] == 4  # DDP on a CPU: a share each
    assert resolve_threads("auto", LARGE, processes=16)[0] == 1
    assert resolve_threads(3, SMALL) == (3, "given explicitly")


def test_auto_stays_within_the_affinity_and_omp_num_threads(eight_cores, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)
    assert usable_cores() == 2  # taskset / a container's share, not os.cpu_count()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # e.g. a sweep's share of the cores
    assert resolve_threads("auto", LARGE)[0] == 1


class ThreadsSeen(L.Callback):
    """Records torch's thread count at every training step."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(torch.get_num_threads())


class TinyModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self.layer(x), y), prog_bar=True)

    def on_train_epoch_end(self) -> None:  # logged after the callbacks' hook of that name
        self.log("train/epochs_done", float(self.current_epoch + 1), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    return DataLoader(data, batch_size=4)


def lab_trainer(tmp_path, **kwargs) -> LabTrainer:
    """A tiny LabTrainer that runs every batch of :func:`loader`."""
    return tiny_trainer(
        tmp_path, LabTrainer, limit_train_batches=None, limit_val_batches=None, **kwargs
    )


def fit(tmp_path, threads="auto", **kwargs) -> tuple[LabTrainer, ThreadsSeen]:
    seen = ThreadsSeen()
    trainer = lab_trainer(tmp_path, threads=threads, callbacks=[seen], **kwargs)
    trainer.fit(TinyModule(), loader(), loader())
    return trainer, seen


@pytest.mark.parametrize(("threshold", "expected"), [(1e9, 1), (0, 2)])
def test_fit_chooses_on_the_sanity_check_so_every_training_step_uses_the_same_threads(
    tmp_path, monkeypatch, caplog, threshold, expected
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "SMALL_NETWORK_FLOPS", threshold)
    torch.set_num_threads(2)
    _, seen = fit(tmp_path)
    assert seen.seen == [expected] * 8  # 2 epochs of 4 steps, none before the choice
    assert f"threads: auto → {expected} (a " in caplog.text


def test_without_a_sanity_check_the_first_training_step_is_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    trainer, seen = fit(tmp_path, num_sanity_val_steps=0)
    choice = next(c for c in trainer.callbacks if isinstance(c, ThreadChoice))
    assert choice.chosen == 1 and seen.seen == [1] * 8  # counted on one thread, kept


class InputGradientModule(TinyModule):
    """A step that takes a gradient inside it, as adversarial training's attack does."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(self.layer(x), y), x)
        return nn.functional.cross_entropy(self.layer(x + grad.sign()), y)


def test_a_counted_step_may_take_gradients_inside_it(tmp_path):
    trainer = lab_trainer(tmp_path, max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(InputGradientModule(), loader())
    choice = next(c for c in trainer.callbacks if isinstance(c, ThreadChoice))
    assert choice.chosen == 1 and trainer.global_step == 4


def test_test_counts_its_first_batch_under_inference_mode(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "SMALL_NETWORK_FLOPS", 1)  # any work is large here
    trainer = lab_trainer(tmp_path)
    module = TinyModule()
    module.test_step = module.validation_step
    trainer.test(module, loader())
    assert torch.get_num_threads() == 2
    assert "threads: auto → 2 (a large network (" in caplog.text


def test_a_given_number_is_set_at_the_start(tmp_path):
    _, seen = fit(tmp_path, threads=3)
    assert seen.seen == [3] * 8


def test_labs_let_idle_openmp_threads_sleep():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import lab1, os; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's choice is kept
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ACTIVE"
