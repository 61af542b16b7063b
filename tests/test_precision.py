"""``precision: auto`` with the hardware query mocked both ways: CUDA present or not, bf16 on the
GPU or not, native bf16 on the CPU or not; an explicit precision always wins."""

from __future__ import annotations

import logging

import pytest
import torch

from common import trainer as trainer_module
from common.cli import main
from common.trainer import LabTrainer, resolve_precision
from tests.conftest import REPO


@pytest.fixture
def machine(monkeypatch):
    """Set what the query sees: ``machine(cuda=..., gpu_bf16=..., cpu_flags=...)``."""

    def set_machine(cuda: bool, gpu_bf16: bool = False, cpu_flags: set[str] = frozenset()):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Mock GPU")
        monkeypatch.setattr(trainer_module, "cpu_flags", lambda: set(cpu_flags))

    return set_machine


@pytest.mark.parametrize(
    ("cuda", "gpu_bf16", "flags", "accelerator", "expected"),
    [
        (True, True, set(), "auto", "bf16-mixed"),
        (True, False, set(), "gpu", "16-mixed"),
        (True, True, {"avx2"}, "cpu", "32-true"),  # a GPU that is not used
        (False, False, {"avx2", "avx512f"}, "auto", "32-true"),
        (False, False, {"avx2", "avx512_bf16"}, "auto", "bf16-mixed"),
        (False, False, {"amx_bf16"}, "cpu", "bf16-mixed"),
    ],
    ids=["gpu-bf16", "gpu-fp16", "gpu-unused", "cpu-avx512-only", "cpu-avx512bf16", "cpu-amx"],
)
def test_auto_follows_the_hardware(machine, cuda, gpu_bf16, flags, accelerator, expected):
    machine(cuda=cuda, gpu_bf16=gpu_bf16, cpu_flags=flags)
    precision, reason = resolve_precision("auto", accelerator)
    assert precision == expected and reason


def test_an_explicit_precision_wins(machine):
    machine(cuda=False, cpu_flags={"amx_bf16"})
    assert resolve_precision("32-true", "cpu") == ("32-true", "given explicitly")
    assert LabTrainer(precision="32-true", accelerator="cpu", logger=False).precision == "32-true"
    assert LabTrainer(accelerator="cpu", logger=False).precision == "bf16-mixed"


def test_the_cli_prints_the_choice_and_saves_it_in_the_run_config(machine, tmp_path, caplog):
    machine(cuda=False, cpu_flags={"avx2"})
    caplog.set_level(logging.INFO)
    main(
        "lab1",
        [
            "fit",
            f"--config={REPO / 'configs/lab1/residual_mlp_mnist.yaml'}",
            "--data=common.data.FakeDataModule",
            "--data.image_shape=[1,28,28]",
            "--data.train_size=48",
            "--data.val_size=16",
            "--data.batch_size=16",
            "--trainer.precision=auto",
            "--trainer.max_epochs=1",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
        ],
    )
    assert "precision: auto → 32-true (the CPU has no native bf16" in caplog.text
    assert "precision: 32-true" in (tmp_path / "config.yaml").read_text()
