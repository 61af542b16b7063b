"""CPU training speed by thread count and OpenMP wait policy, on an idle CPU and beside a busy one.

Each cell runs in its own process (OpenMP reads ``OMP_WAIT_POLICY`` when torch loads): a bare
training loop (forward, cross-entropy, backward, Adam step) on random batches of one network,
timed after a warm-up. ``--busy N`` cells run with N CPU-bound processes beside them (a shared
laptop or CI runner); "auto chooses" is what ``trainer.threads: auto`` takes for that network
(:mod:`common.threads`). Prints a markdown table (steps/s) with the CPU and its flags.

    python benchmarks/cpu_threads.py [--seconds 8] [--busy 1] [--output results/threads.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def residual_mlp():
    from lab1.models import ResidualMLP

    return ResidualMLP(width=16, depth=8)


def resnet14_half():
    from common.models.resnet import CifarResNet

    return CifarResNet(stage_depths=(2, 2, 2), widths=(8, 16, 32))


def resnet20():
    from common.models.resnet import CifarResNet

    return CifarResNet()


#: network name → (builder, input shape, batch size): the configs' networks
NETWORKS = {
    "residual_mlp": (residual_mlp, (1, 28, 28), 128),  # configs/lab1/residual_mlp_mnist.yaml
    "resnet14_half": (resnet14_half, (3, 32, 32), 128),  # the distillation student
    "resnet20": (resnet20, (3, 32, 32), 128),  # configs/lab1/resnet20_cifar10.yaml
}
BUSY_LOOP = "while True: pass"


def measure(network: str, threads: str, seconds: float) -> dict:
    """Steps/s of ``network`` with ``threads`` (a number or ``auto``): run in a fresh process."""
    import torch

    from common.threads import flops_per_batch, resolve_threads

    build, shape, batch_size = NETWORKS[network]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(batch_size, *shape)
    y = torch.randint(0, 10, (batch_size,))
    flops = flops_per_batch(model, x)
    chosen, _ = resolve_threads(threads, flops)
    torch.set_num_threads(chosen)
    optimizer = torch.optim.Adam(model.parameters())

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return {
        "steps_per_s": steps / (time.perf_counter() - start),
        "threads": chosen,
        "auto": resolve_threads("auto", flops)[0],
        "gflops": flops / 1e9,
    }


def cpu_description() -> str:
    """The CPU model, its core count and whether it has AVX512 / native bf16."""
    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    shown = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    return f"{model}, {os.cpu_count()} cores, flags: {', '.join(shown) or 'none of avx2/avx512'}"


def run_cell(network: str, threads: str, policy: str, seconds: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("OMP_NUM_THREADS", None)
    if policy == "default":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = policy
    args = [sys.executable, __file__, "--cell", network, threads, str(seconds)]
    output = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per cell")
    parser.add_argument(
        "--busy", type=int, default=1, help="CPU-bound processes beside the busy cells"
    )
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--threads", nargs="+", default=["1", str(os.cpu_count())])
    parser.add_argument("--policies", nargs="+", default=["default", "PASSIVE"])
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    parser.add_argument("--cell", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        network, threads, seconds = args.cell
        print(json.dumps(measure(network, threads, float(seconds))))
        return

    start = time.perf_counter()
    rows = []
    for load in ("idle", "busy"):
        neighbours = []
        if load == "busy":
            neighbours = [
                subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)
            ]
        try:
            for network in args.networks:
                for policy in args.policies:
                    for threads in args.threads:
                        cell = run_cell(network, threads, policy, args.seconds)
                        rows.append((network, policy, threads, load, cell))
                        print(network, policy, threads, load, cell, flush=True)
        finally:
            for neighbour in neighbours:
                neighbour.kill()
                neighbour.wait()

    speed = {(n, p, t, load): c["steps_per_s"] for n, p, t, load, c in rows}
    lines = [
        f"CPU: {cpu_description()}; torch threads by cell; busy = {args.busy} CPU-bound "
        f"process(es) beside the run; {args.seconds:g} s timed per cell; wall "
        f"{(time.perf_counter() - start) / 60:.1f} min.",
        f"`python benchmarks/cpu_threads.py --seconds {args.seconds:g} --busy {args.busy}`",
        "",
        "| network | GFLOP/batch | auto chooses | OMP_WAIT_POLICY | threads | idle steps/s "
        "| busy steps/s | busy/idle |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for network, policy, threads, load, cell in rows:
        if load != "idle":
            continue
        idle, busy = (
            speed[network, policy, threads, "idle"],
            speed[network, policy, threads, "busy"],
        )
        lines.append(
            f"| {network} | {cell['gflops']:.3f} | {cell['auto']} | {policy} | {cell['threads']} "
            f"| {idle:.1f} | {busy:.1f} | {busy / idle:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
