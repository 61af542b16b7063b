"""``python -m lab2 report``: one table, one figure and one page of samples over ``fit`` + ``test``
runs of Lab 2 (``configs/lab2/report.yaml``: the bigram floor and the depth × width study).

``--runs`` maps each model's label to its run folder (``trainer.default_root_dir``). Per run:
parameters, training steps and characters, the fit's wall time and characters per second (from
the CSV logs' file times, validation included: :func:`common.run_logs.fit_seconds`), the best
validation loss and the test loss in nats and bits per character and as perplexity. The figure
draws every run's validation loss against the characters it had trained on. The samples are
drawn from each ``best.ckpt`` with the same prompt, seed and settings; beside each, the longest
stretch of it (the prompt left out) that also occurs in the training text — how much the model
copies rather than composes, the overfitting question on a 187 k-character corpus.

Without ``--output`` the table is printed and nothing is written; with it, the table goes there
and ``loss_curves.png`` and ``samples.md`` beside it.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from common.commands import command_parser, write_text_atomic
from common.plots import plot_curves
from common.run_logs import fit_seconds, fit_sessions, newest_rows, read_csv
from lab2.data import TextDataModule, Vocabulary
from lab2.generate import load_network
from lab2.module import DANTE_PROMPT
from lab2.sampling import sample_texts

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    label: str
    network: str
    parameters: int
    steps: int
    characters: int
    seconds: float | None
    best_val_loss: float | None
    test_loss: float | None
    val_curve: list[tuple[float, float]]  #: (characters trained, val loss)
    sample: str
    copied: str  #: the longest stretch of the sample's new text found in the training text
    verses: Verses  #: of the sample's new text
    held_out: Verses  #: of the run's validation and test text


@dataclass(frozen=True)
class Verses:
    """What a text's verse looks like: the mean length of its non-empty lines, and the share of
    lines that rhyme with the line two verses later (last two letters, blank lines skipped) —
    about two in three in terza rima (ABA BCB CDC …), far fewer in prose or random lines."""

    mean_length: float
    rhyme_share: float

    @classmethod
    def of(cls, text: str) -> Verses:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        endings = ["".join(c for c in line.lower() if c.isalpha())[-2:] for line in lines]
        pairs = [(a, b) for a, b in zip(endings, endings[2:], strict=False) if a and b]
        return cls(
            mean_length=sum(map(len, lines)) / max(1, len(lines)),
            rhyme_share=sum(a == b for a, b in pairs) / max(1, len(pairs)),
        )


def longest_common_substring(text: str, reference: str) -> str:
    """The longest substring of ``text`` that occurs in ``reference``. The best length only grows
    while ``text`` is scanned, so about ``len(text)`` substring searches (in C) suffice."""
    best = ""
    for start in range(len(text)):
        length = len(best) + 1
        while start + length <= len(text) and text[start : start + length] in reference:
            best = text[start : start + length]
            length += 1
    return best


def summarize(label: str, run_dir: Path, prompt: str, length: int, seed: int) -> RunSummary:
    sessions = fit_sessions(run_dir)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    if not sessions or not checkpoint.is_file():
        raise SystemExit(
            f"error: {label}: no finished fit in {run_dir}; run `python -m lab2 fit` and `test` "
            "with its config first"
        )
    config = yaml.safe_load((sessions[0] / "config.yaml").read_text())
    data = TextDataModule(**config["data"]["init_args"])
    data.setup()
    per_step = data.batch_size * data.context
    rows = [row for session in sessions for row in read_csv(session / "metrics.csv")]
    val = [(int(r["step"]) * per_step, float(r["val/loss"])) for r in rows if r.get("val/loss")]
    test_rows = newest_rows(run_dir, "test/loss")
    test_loss = next((float(r["test/loss"]) for r in test_rows if r.get("test/loss")), None)
    network, vocabulary = load_network(checkpoint)
    steps = max((int(r["step"]) + 1 for r in rows if r.get("step")), default=0)
    text = sample_texts(network, vocabulary, prompt, length, seed, temperature=0.8)[0]
    vocabulary_of_text = Vocabulary(data.vocabulary)
    train_text = vocabulary_of_text.decode(data.splits["train"])
    held_out = vocabulary_of_text.decode(torch.cat([data.splits["val"], data.splits["test"]]))
    shape = network.config()
    described = (
        f"{shape['layers']} × {shape['width']}, {shape['heads']} heads"
        if "layers" in shape
        else "bigram table"
    )
    seconds = fit_seconds(run_dir)
    return RunSummary(
        label=label,
        network=f"{described}, context {shape['context']}",
        parameters=sum(p.numel() for p in network.parameters()),
        steps=steps,
        characters=steps * per_step,
        seconds=None if seconds is None else seconds[0],
        best_val_loss=min((loss for _, loss in val), default=None),
        test_loss=test_loss,
        val_curve=val,
        sample=text,
        copied=longest_common_substring(text[len(prompt) :], train_text),
        verses=Verses.of(text[len(prompt) :]),
        held_out=Verses.of(held_out),
    )


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(runs: list[RunSummary]) -> str:
    reference = runs[0].held_out
    lines = [
        "| model | network | parameters | steps | characters trained | fit wall time (s) | "
        "characters/s | best val loss (nats/char) | test loss (nats/char) | test bits/char | "
        "test perplexity | sample: longest stretch copied from the training text | "
        "sample: mean verse length | sample: rhymes (verse n, n + 2) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        rate = run.characters / run.seconds if run.seconds else None
        bits = None if run.test_loss is None else run.test_loss / math.log(2)
        perplexity = None if run.test_loss is None else math.exp(run.test_loss)
        lines.append(
            f"| {run.label} | {run.network} | {run.parameters:,} | {run.steps:,} | "
            f"{run.characters:,} | {_number(run.seconds, 0)} | {_number(rate, 0)} | "
            f"{_number(run.best_val_loss)} | {_number(run.test_loss)} | {_number(bits)} | "
            f"{_number(perplexity, 2)} | {len(run.copied)} characters | "
            f"{run.verses.mean_length:.1f} | {run.verses.rhyme_share:.0%} |"
        )
    lines += [
        "",
        f"The held-out text itself (validation + test parts of {runs[0].label}'s text): mean verse "
        "length "
        f"{reference.mean_length:.1f} characters, rhymes {reference.rhyme_share:.0%}.",
    ]
    return "\n".join(lines) + "\n"


def samples_page(runs: list[RunSummary], prompt: str, seed: int) -> str:
    parts = [
        f"# Samples (prompt {prompt!r}, seed {seed}, temperature 0.8, best checkpoints)",
        "",
        "Beside each: the longest stretch of its new text that also occurs in the training text.",
        "",
    ]
    for run in runs:
        parts += [
            f"## {run.label}",
            "",
            "```text",
            run.sample,
            "```",
            "",
            f"Longest copied stretch ({len(run.copied)} characters): `{run.copied!r}`",
            "",
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> str:
    parser = command_parser("python -m lab2 report", __doc__)
    parser.add_argument("--runs", type=dict[str, str], required=True, help="label → run folder")
    parser.add_argument("--prompt", type=str, default=DANTE_PROMPT, help="of every sample")
    parser.add_argument("--length", type=int, default=1000, help="characters sampled per model")
    parser.add_argument("--seed", type=int, default=0, help="of every sample")
    parser.add_argument(
        "--output", type=str | None, default=None,
        help="the table's file, the figure and samples.md beside it (none: print, write nothing)",
    )  # fmt: skip
    cfg = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [
        summarize(label, Path(folder), cfg.prompt, cfg.length, cfg.seed)
        for label, folder in cfg.runs.items()
    ]
    text = table(runs)
    if cfg.output is None:
        sys.stdout.write(text)
        return text
    output = write_text_atomic(cfg.output, text)
    write_text_atomic(output.parent / "samples.md", samples_page(runs, cfg.prompt, cfg.seed))
    plot_curves(
        {run.label: run.val_curve for run in runs},
        output.parent / "loss_curves.png",
        xlabel="characters trained",
        ylabel="validation loss (nats/char)",
        title="Dante's Inferno: held-out loss while training",
    )
    log.info("wrote %s, samples.md and loss_curves.png beside it", output)
    return text
