"""The GPU check: the project's speed claims measured in one run on one device (< 8 min on an H100).

  1. Lab 1 training: ``fit`` (the ResNet-20 recipe, in-process, without its EMA callback) vs a
     bare PyTorch loop doing the same work per step (``train_throughput.py``): fit/bare, goal
     >= 0.95.
  2. Lab 4 attack: iterative FGSM (ε = 1/255, ≤ 10 steps) on the pretrained ResNet-20, batched vs
     one image at a time (``attack_speed.py``): speed-up, goal >= 20×.
  3. Lab 4 OOD table: wall time of ``python -m lab4 test --config
     configs/lab4/ood/resnet20_pretrained.yaml`` (a subprocess, as a user runs it) and its
     near-OOD group rows.
  4. Lab 3: caption → story for the same images batched vs one by one, fp32 as
     ``configs/lab3/story.yaml`` runs (``lab3_speed.py``).

Prints a header (device, torch, the precision ``auto`` picks), each section as it finishes and
the whole report at the end; ``--output`` writes the same markdown (after every section).
``--tiny``: small sizes (a minute or two on a CPU) to check that it runs, not a measurement.
Run from the repository root:

    python benchmarks/gpu_check.py [--device cuda|cpu] [--tiny] [--output results/gpu_check.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# attack_speed, lab3_speed, train_throughput: the benchmarks beside this file (run as a script,
# its folder is the first entry of sys.path)
import attack_speed
import lab3_speed
import torch
import train_throughput

from common.models.pretrained import ResNet20
from common.trainer import resolve_precision

OOD_CONFIG = "configs/lab4/ood/resnet20_pretrained.yaml"


@dataclass(frozen=True)
class Sizes:
    fit_steps: int
    fit_warmup: int
    fit_batch_size: int | None  # None: the recipe's (128)
    attack_images: int
    attack_batch_size: int
    ood_overrides: tuple[str, ...]
    lab3_images: int
    lab3_caption_tokens: int
    lab3_story_tokens: int
    lab3_tiny: bool


FULL = Sizes(
    fit_steps=100, fit_warmup=10, fit_batch_size=None, attack_images=1000, attack_batch_size=500,
    ood_overrides=(), lab3_images=16, lab3_caption_tokens=20, lab3_story_tokens=32,
    lab3_tiny=False,
)  # fmt: skip
TINY = Sizes(
    fit_steps=4, fit_warmup=2, fit_batch_size=32, attack_images=16, attack_batch_size=16,
    ood_overrides=(
        "--data.init_args.ood_size=64", "--data.init_args.batch_size=128",
        "--trainer.limit_test_batches=2", "--trainer.callbacks.init_args.fit_images=256",
        "--trainer.callbacks.init_args.tune_images=64",
    ),
    lab3_images=2, lab3_caption_tokens=4, lab3_story_tokens=4, lab3_tiny=True,
)  # fmt: skip


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (``/proc/cpuinfo``) and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    return f"CPU {model or platform.processor() or 'unknown'}, {torch.get_num_threads()} threads"


class Report:
    """Markdown lines, printed as they come and written to ``output`` (if any) every section."""

    def __init__(self, output: Path | None) -> None:
        self.output, self.lines, self.failed = output, [], []

    def add(self, *lines: str) -> None:
        self.lines += lines
        print("\n".join(lines), flush=True)

    def section(self, title: str, run, *args) -> None:
        self.add("", f"## {title}", "")
        start = time.perf_counter()
        try:
            self.add(*run(*args))
        except Exception as error:  # the other sections still run; the exit status says it
            self.failed.append(title)
            self.add(f"**failed**: {type(error).__name__}: {error}")
        self.add("", f"(section wall time {time.perf_counter() - start:.0f} s)")
        self.save()

    def save(self) -> None:
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text("\n".join(self.lines) + "\n")


def lab1_fit(device: torch.device, name: str, precision: str, sizes: Sizes) -> list[str]:
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    fit, cli = train_throughput.fit_rate(
        sizes.fit_steps, accelerator, precision, sizes.fit_warmup, sizes.fit_batch_size
    )
    bare = train_throughput.bare_rate(
        cli.model, cli.datamodule, sizes.fit_steps, accelerator, precision, sizes.fit_warmup
    )
    batch = cli.datamodule.batch_size
    return [
        "| loop | images/s |",
        "|---|---:|",
        f"| bare PyTorch loop (same step: augmentation, channels-last, loss, lr) | {bare:.0f} |",
        f"| `python -m lab1 fit` (recipe, `--trainer.callbacks=[]`, in-process) | {fit:.0f} |",
        "",
        f"fit/bare = **{fit / bare:.2f}** (goal ≥ 0.95) on {name}: batch {batch}, {precision}, "
        f"{sizes.fit_steps} steps after {sizes.fit_warmup} warm-up",
    ]


def lab4_attack(device: torch.device, name: str, sizes: Sizes) -> list[str]:
    model = ResNet20(path=attack_speed.PRETRAINED).to(device).eval()
    images, labels = attack_speed.sample_images(sizes.attack_images, device)
    result = attack_speed.compare(
        model, images, labels, "iterative", 1 / 255, 10, sizes.attack_batch_size
    )
    n = result.images
    return [
        "| way | seconds | images/s |",
        "|---|---:|---:|",
        f"| batched ({result.batch_size}/call) | {result.batched_seconds:.2f} | "
        f"{n / result.batched_seconds:.1f} |",
        f"| one image per call | {result.single_seconds:.2f} | {n / result.single_seconds:.1f} |",
        "",
        f"speed-up **{result.speedup:.1f}×** (goal ≥ 20×) on {name}: pretrained ResNet-20, fp32, "
        f"iterative FGSM ε = 1/255 × ≤ 10, {n} CIFAR-10 test images; same step counts "
        f"{result.same_steps:.3f}, same images {result.same_images:.3f}, success "
        f"{result.batched_success:.3f} vs {result.single_success:.3f}",
    ]


def lab4_ood(device: torch.device, name: str, sizes: Sizes) -> list[str]:
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable, "-m", "lab4", "test", "--config", OOD_CONFIG,
            "--trainer.accelerator", accelerator, "--trainer.devices", "1",
            "--trainer.default_root_dir", run_dir, "--trainer.logger", "false",
            *sizes.ood_overrides,
        ]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=480,
            env={**os.environ, "WANDB_MODE": "disabled"},
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"exit status {done.returncode}: {' / '.join(tail)}")
    lines = (done.stdout + done.stderr).splitlines()  # the table is logged: on stderr
    header = [i for i, ln in enumerate(lines) if ln.startswith("| group |")]
    table = lines[header[0] : header[0] + 2] if header else []
    near = [ln for ln in lines if ln.startswith("| near |")]  # the near-OOD group's means
    if not near:
        raise RuntimeError(f"no near-OOD group rows in the output of {' '.join(command)}")
    accuracy = [ln for ln in lines if ln.startswith("ID test accuracy")]
    return [
        f"`python -m lab4 test --config {OOD_CONFIG} --trainer.accelerator {accelerator}"
        f"{''.join(' ' + o for o in sizes.ood_overrides)}`: **{seconds:.1f} s** wall on {name} "
        "(the whole table: fitting and tuning the detectors, every OOD set"
        f"{'; ' + accuracy[0] if accuracy else ''})",
        "",
        *table,
        *near,
    ]


def lab3(device: torch.device, name: str, sizes: Sizes) -> list[str]:
    generator = lab3_speed.build_generator(str(device), sizes.lab3_caption_tokens, sizes.lab3_tiny)
    items = lab3_speed.noise_images(sizes.lab3_images)
    lab3_speed.timed(generator, items[:2], sizes.lab3_story_tokens, batched=True, bf16=False)
    row = lab3_speed.compare(generator, items, sizes.lab3_story_tokens, "fp32")
    models = "tiny random models" if sizes.lab3_tiny else "BLIP base + TinyStories-33M shapes"
    return [
        *lab3_speed.HEADER,
        row.markdown(),
        "",
        f"batched / one by one = **{row.speedup:.2f}×** (goal ≥ 3×) on {name}: {models} "
        f"(random weights), {row.images} images, captions {sizes.lab3_caption_tokens} tokens, "
        f"stories {sizes.lab3_story_tokens} tokens, fp32",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--tiny", action="store_true", help="small sizes: does it run?")
    parser.add_argument("--output", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here (torch.cuda.is_available() is False)")
    torch.set_float32_matmul_precision("high")  # as `python -m lab1|lab3|lab4` set it
    device = torch.device(args.device)
    name = device_name(device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    precision, reason = resolve_precision("auto", accelerator)
    sizes = TINY if args.tiny else FULL
    start = time.perf_counter()
    report = Report(args.output)
    report.add(
        f"# GPU check{' (tiny sizes: not a measurement)' if args.tiny else ''}",
        "",
        f"device: **{name}** ({device.type}); torch {torch.__version__}; "
        f"precision auto → {precision} ({reason})",
    )
    report.section("1. Lab 1 training: fit vs bare loop", lab1_fit, device, name, precision, sizes)
    report.section(
        "2. Lab 4 attack: batched vs one image at a time", lab4_attack, device, name, sizes
    )
    report.section("3. Lab 4 OOD table: wall time", lab4_ood, device, name, sizes)
    report.section("4. Lab 3: batched vs one by one", lab3, device, name, sizes)
    report.add("", f"total wall time {time.perf_counter() - start:.0f} s on {name}")
    report.save()
    print("\n==== report ====\n" + "\n".join(report.lines))
    if report.failed:
        print(f"failed sections: {', '.join(report.failed)}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
