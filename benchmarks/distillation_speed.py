"""Knowledge distillation's costs: the student's size and speed beside the teacher's, and the
training time with and without the teacher.

Both runs are built from their configs (``configs/lab1/distillation/student_alone.yaml``, and
with ``distilled.yaml`` stacked on it: the same networks, precision and memory format), on
FakeData batches of CIFAR-10's shape, and a markdown table is printed:

- parameters and inference images/s of teacher and student (eval mode, no gradients, batches of
  ``--inference_batch`` = 256, the run's precision);
- training images/s of ``fit`` of each config over ``--steps`` batches of 128 (after warm-up)
  and the time of one CIFAR-10 training epoch (45,000 images, validation not counted) that
  implies: a distilled step adds the teacher's forward pass to the student's forward and
  backward passes.

Weights do not change speed: an untrained ResNet-20 in a temporary checkpoint stands in for the
trained teacher, so nothing has to be trained first.

    python benchmarks/distillation_speed.py [--device cpu|cuda] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from torch import nn
from train_throughput import StepTimer, synchronize  # same folder: first entry of sys.path

from common.classifier import ImageClassifier
from common.cli import LabCLI
from common.models import CifarResNet

STUDENT_ALONE = "--config=configs/lab1/distillation/student_alone.yaml"
DISTILLED = "--config=configs/lab1/distillation/distilled.yaml"  # stacked on STUDENT_ALONE
CIFAR10_TRAIN_IMAGES = 45_000  # 50,000 minus the 5,000 held out for validation


def stand_in_teacher(run_dir: str) -> str:
    """An untrained ResNet-20 (the teacher network of distilled.yaml) as a ``fit`` checkpoint."""
    teacher = ImageClassifier(CifarResNet((3, 3, 3)), 10, normalization=([0.5] * 3, [0.25] * 3))
    path = f"{run_dir}/teacher.ckpt"
    torch.save(
        {"pytorch-lightning_version": L.__version__, "state_dict": teacher.state_dict()}, path
    )
    return path


def build(configs: list[str], device: str, steps: int, warmup: int, run_dir: str) -> LabCLI:
    """The configs' Trainer and module, on FakeData of CIFAR-10's shape, for a timed ``fit``."""
    batch_size = 128
    args = [
        *configs,
        "--data=common.data.FakeDataModule",
        f"--data.train_size={batch_size * (steps + warmup)}",
        "--data.val_size=0",
        f"--data.batch_size={batch_size}",
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "--trainer.devices=1",
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0",
        "--trainer.logger=false",
        "--trainer.callbacks=[]",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={run_dir}",
    ]
    with warnings.catch_warnings():  # our own argv is this script's, not the CLI's
        warnings.filterwarnings("ignore", message=".*args parameter is intended")
        return LabCLI(args=args, run=False)


def training_rate(cli: LabCLI, warmup: int) -> float:
    """Images/s of ``fit`` after ``warmup`` batches."""
    timer = StepTimer(warmup)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    return timer.images / timer.seconds


@torch.no_grad()
def inference_rate(cli: LabCLI, network: nn.Module, batch_size: int, batches: int) -> float:
    """Images/s of ``network`` in eval mode, in the run's precision and memory format."""
    device = cli.model.device
    network = network.to(device).eval()
    images = torch.rand(batch_size, 3, 32, 32, device=device)
    images = images.contiguous(memory_format=cli.model.memory_format)
    with cli.trainer.precision_plugin.forward_context():
        for _ in range(2):  # warm-up
            network(images)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(batches):
            network(images)
        synchronize(device)
    return batches * batch_size / (time.perf_counter() - start)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "CPU")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed training batches of 128")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--inference_batch", type=int, default=256)
    parser.add_argument("--inference_batches", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_float32_matmul_precision("high")  # as `python -m lab1` sets it
    rates, clis = {}, []
    with tempfile.TemporaryDirectory() as run_dir:
        teacher = f"--model.init_args.teacher_checkpoint={stand_in_teacher(run_dir)}"
        runs = {
            "student alone (cross-entropy)": [STUDENT_ALONE],
            "distilled (teacher forward + student)": [STUDENT_ALONE, DISTILLED, teacher],
        }
        for name, configs in runs.items():
            folder = f"{run_dir}/{len(clis)}"
            clis.append(build(configs, args.device, args.steps, args.warmup, folder))
            rates[name] = training_rate(clis[-1], args.warmup)
    cli = clis[-1]  # the distilled run: both networks
    networks = {"teacher": cli.model.teacher, "student": cli.model.model}
    inference = {
        role: inference_rate(cli, network, args.inference_batch, args.inference_batches)
        for role, network in networks.items()
    }
    params = {
        role: sum(p.numel() for p in network.parameters()) for role, network in networks.items()
    }
    print(
        f"device: **{device_name(args.device)}** ({args.device}, {torch.get_num_threads()} "
        f"threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); torch "
        f"{torch.__version__}; precision {cli.trainer.precision}\n"
    )
    print(f"| network | parameters | inference images/s (eval, batch {args.inference_batch}) |")
    print("|---|---:|---:|")
    for role, network in networks.items():
        print(f"| {role}: {type(network).__name__} | {params[role]:,} | {inference[role]:,.0f} |")
    print(
        f"\nstudent/teacher: **{params['student'] / params['teacher']:.2f}×** the parameters, "
        f"**{inference['student'] / inference['teacher']:.1f}×** the inference images/s\n"
    )
    print(f"| training run (batch 128, {args.steps} steps) | images/s | one CIFAR-10 epoch (s) |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {CIFAR10_TRAIN_IMAGES / rate:,.0f} |")
    alone, distilled = rates.values()
    print(f"\nepoch time distilled / alone = **{alone / distilled:.2f}×**")


if __name__ == "__main__":
    main()
