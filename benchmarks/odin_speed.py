"""ODIN's (T, ε) grid: shared gradients (``lab4.detectors.odin_grid``) vs the naive loop.

The tuning in ``OODEvaluation`` scores validation images at every grid point. ``odin_grid`` takes
one forward pass per batch for every T (the logits do not depend on T), one backward pass per T
whose gradient sign serves every ε, and reads ε = 0 off those logits; the naive loop calls
``lab4.detectors.odin`` for every (T, ε), recomputing the gradient each time. This script times
both on the same images and grid, checks that they give the same scores, and prints the
machine it ran on.

Images are random (the timing does not depend on their content); the network is ResNet-20,
randomly initialised unless ``--weights`` names the pretrained file. The defaults are small (about
a minute on two CPU cores); the README's numbers use ``--images 2000``, as the tuning does
(1,000 ID + 1,000 OOD validation images).

    python benchmarks/odin_speed.py [--images 200] [--batch_size 100] [--threads N]
        [--weights data/weights/resnet20-12fca82f.th] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from common.models.pretrained import ResNet20
from lab4.detectors import odin, odin_grid

TEMPERATURES = [1.0, 10.0, 100.0, 1000.0]
EPSILONS = [0.0, 0.0005, 0.001, 0.002, 0.004]


def machine(device: torch.device) -> str:
    """The processor (or GPU), the cores and the threads torch uses."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
        if line.startswith("model name")
    ]
    cpu = names[0] if names else platform.processor() or platform.machine()
    text = f"CPU: {cpu}, {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}"
    if device.type == "cuda":
        text += f"; GPU: {torch.cuda.get_device_name(device)}"
    return text + f"; torch {torch.__version__}"


def timed(function, device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200, help="images scored (default 200)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--weights", default=None, help="the pretrained ResNet-20 file (akamaster)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.weights:
        model = ResNet20("akamaster", args.weights)
    else:
        model = ResNet20()
        model.features.normalize.set_statistics([0.5] * 3, [0.25] * 3)
    model.eval().to(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.images, 3, 32, 32, generator=generator).to(device)
    batches = images.split(args.batch_size)
    print(machine(device))
    print(
        f"ResNet-20 ({'pretrained' if args.weights else 'random init'}) on {device}, "
        f"{args.images} images in batches of {args.batch_size}, "
        f"grid {len(TEMPERATURES)} T × {len(EPSILONS)} ε"
    )

    shared, shared_seconds = timed(
        lambda: odin_grid(model, batches, TEMPERATURES, EPSILONS), device
    )
    print(f"shared gradients (odin_grid):  {shared_seconds:7.1f} s")
    naive, naive_seconds = timed(
        lambda: torch.stack([
            torch.stack([torch.cat([odin(model, b, t, e).float().cpu() for b in batches])
                         for e in EPSILONS])
            for t in TEMPERATURES
        ]),
        device,
    )  # fmt: skip
    print(f"naive odin() per (T, ε):       {naive_seconds:7.1f} s")
    print(f"speed-up: {naive_seconds / shared_seconds:.1f}x")
    difference = (shared - naive).abs().max().item()
    print(f"largest score difference: {difference:.2e} (float rounding only)")


if __name__ == "__main__":
    main()
