"""The GPU check (``benchmarks/gpu_check.py``) at tiny sizes on the CPU: every section runs and
reports numbers, and the markdown file holds the printed report (real data: CI has it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

DATA = REPO / "data"  # the benchmarks name `data/...` relative to the repository root
NEEDED = [
    "cifar10/train",
    "cifar10/test",
    "imagenette/train",
    "imagenette/val",
    "mnist/test",
    "weights/resnet20-12fca82f.th",
]


@pytest.mark.slow
def test_gpu_check_tiny_on_cpu_reports_every_section(tmp_path):
    missing = [name for name in NEEDED if not (DATA / name).exists()]
    if missing:
        pytest.skip(f"real data missing in {DATA}: {', '.join(missing)} (run `make data`)")
    output = tmp_path / "report" / "gpu_check.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny",
         "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout.split("==== report ====\n", 1)[1]

    number = r"\d+\.\d+"
    assert re.search(r"device: \*\*CPU .+\*\* \(cpu\); torch \S+; precision auto → \S+", report)
    expected = [
        rf"## 1\. Lab 1 training.*\n(.*\n)*?\| bare PyTorch loop .*\| \d+ \|\n"
        rf"\| `python -m lab1 fit` .*\| \d+ \|\n\nfit/bare = \*\*{number}\*\* .* on CPU",
        rf"## 2\. Lab 4 attack.*\n(.*\n)*?\| batched \(16/call\) \| {number} \| {number} \|\n"
        rf"\| one image per call \| {number} \| {number} \|\n\n"
        rf"speed-up \*\*{number}×\*\* .* on CPU",
        rf"## 3\. Lab 4 OOD table.*\n(.*\n)*?.*: \*\*{number} s\*\* wall on CPU .*\n\n"
        rf"\| group .*\n\|---.*\n(\| near \| [\w.]+ \| {number} \|.*\n)+",
        rf"## 4\. Lab 3.*\n(.*\n)*?\| fp32 \| {number} \({number} s\) \| {number} \({number} s\) "
        rf"\| {number}x \| 2/2 \|\n\nbatched / one by one = \*\*{number}×\*\* .* on CPU",
    ]
    for pattern in expected:
        assert re.search(pattern, report), f"{pattern!r} not in the report:\n{report}"
    assert "failed" not in report
    assert output.read_text() == report  # the file: the same markdown


def test_cpu_threads_benchmark_measures_each_cell_idle_and_busy(tmp_path):
    output = tmp_path / "threads.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/cpu_threads.py", "--seconds", "0.2", "--networks",
         "residual_mlp", "--policies", "PASSIVE", "--threads", "1", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in output.read_text().splitlines() if line.startswith("| residual_mlp")]
    number = r"\d+\.\d+"
    pattern = (
        rf"\| residual_mlp \| 0\.004 \| 1 \| PASSIVE \| 1 \| {number} \| {number} \| {number} \|"
    )
    assert len(rows) == 1 and re.fullmatch(pattern, rows[0]), rows
    assert "CPU: " in output.read_text() and "busy = 1 CPU-bound" in output.read_text()
