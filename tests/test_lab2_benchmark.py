"""``benchmarks/lab2_nanogpt.py`` at tiny sizes: both parts run, and each table has the bare
loop's row and ``fit``'s, with numbers that agree with each other (no thresholds on speed)."""

from __future__ import annotations

import importlib
import math
import random
import re

import torch

from tests.conftest import REPO

NUMBER = r"(\d+(?:\.\d+)?)"


def test_lab2_nanogpt_benchmark_reports_the_recipe_and_fit_side_by_side(
    tmp_path, monkeypatch, capsys
):
    words = ["Nel", "mezzo", "del", "cammin", "di", "nostra", "vita", "mi", "ritrovai", "una"]
    chooser = random.Random(0)
    text = tmp_path / "verses.txt"  # with the words of the config's sample prompt
    text.write_text("".join(" ".join(chooser.choices(words, k=8)) + "\n" for _ in range(120)))
    output = tmp_path / "report" / "lab2_nanogpt.md"
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as when run as a script
    monkeypatch.chdir(REPO)  # the benchmark names configs/... relative to the repository
    benchmark = importlib.import_module("lab2_nanogpt")
    threads, matmul = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:  # in this process: a second one would spend longer importing Lightning than running
        benchmark.main(
            ["--text", str(text), "--steps", "2", "--warmup", "1", "--repeats", "1",
             "--precisions", "32-true", "--recipe_iters", "2", "--threads", "1",
             "--out", str(output)]
        )  # fmt: skip
    finally:  # what the benchmark sets for the whole process, as `python -m lab2` does
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(matmul)
    report = output.read_text()
    assert capsys.readouterr().out.endswith(report)  # the file holds the printed tables

    bare = re.search(
        rf"\| bare PyTorch loop \(nanoGPT's\) \| 32-true \| 1 \| {NUMBER} \| \|", report
    )
    fit = re.search(rf"\| `python -m lab2 fit` \| 32-true \| 1 \| {NUMBER} \| {NUMBER} \|", report)
    assert bare and fit, report
    bare_rate, fit_rate, ratio = float(bare[1]), float(fit[1]), float(fit[2])
    assert bare_rate > 0 and fit_rate > 0
    assert math.isclose(ratio, fit_rate / bare_rate, rel_tol=0.01)

    rows = re.findall(
        rf"\| (nanoGPT recipe|`python -m lab2 fit --config \S+`).* \| ([\d,]+) \| (\d+) \| "
        rf"{NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|",
        report,
    )
    assert [row[0] for row in rows] == ["nanoGPT recipe", "`python -m lab2 fit --config "
                                        "configs/lab2/gpt_small.yaml`"], report  # fmt: skip
    (_, _, recipe_steps, *_), (_, _, fit_steps, *_) = rows
    assert int(recipe_steps) == 3  # iterations 0..max_iters, as nanoGPT's train.py runs them
    assert int(fit_steps) >= 1
    for _, _, _, wall, rate, nats, bits in rows:
        assert float(wall) > 0 and float(rate) > 0
        # a model that has barely trained: about the uniform guess over the text's characters
        assert 0 < float(nats) < 2 * math.log(len(set(text.read_text())))
        assert math.isclose(float(bits), float(nats) / math.log(2), abs_tol=2e-4)
