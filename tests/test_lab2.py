"""Lab 2's data, training and CLI: the vocabulary, the contiguous split, seeded windows, every
config for one batch, exact resume, same config twice, and one-line errors for bad texts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.cli import main
from lab2.data import TextDataModule, TextError, Vocabulary, line_cut
from lab2.module import warmup_cosine
from lab2.report import Verses, longest_common_substring
from tests.conftest import REPO

CONFIGS = sorted(p for p in (REPO / "configs/lab2").glob("*.yaml") if "trainer:" in p.read_text())
VERSES = (
    "Nel mezzo del cammin di nostra vita\n  mi ritrovai per una selva oscura\n"
    "  che' la diritta via era smarrita.\n\nAhi quanto a dir qual era e` cosa dura\n"
    "  esta selva selvaggia e aspra e forte\n  che nel pensier rinova la paura!\n\n"
)


def write_text(folder: Path, repeats: int = 60) -> Path:
    """A small Dante-like text: ~14 k characters, every character of the verses above."""
    path = folder / "verses.txt"
    path.write_text(VERSES * repeats, encoding="utf-8")
    return path


def test_vocabulary_round_trips_and_names_unknown_characters():
    vocabulary = Vocabulary.of(VERSES)
    assert vocabulary.characters == "".join(sorted(set(VERSES)))
    assert vocabulary.decode(vocabulary.encode(VERSES)) == VERSES
    with pytest.raises(TextError, match=r"not in the model's vocabulary: 'QZ'"):
        vocabulary.encode("Quel Zefiro")


def test_split_is_contiguous_at_line_starts_and_held_out_windows_cover_it(tmp_path):
    data = TextDataModule(str(write_text(tmp_path)), context=32, batch_size=4)
    data.setup()
    text = (tmp_path / "verses.txt").read_text()
    vocabulary = Vocabulary(data.vocabulary)
    parts = [vocabulary.decode(data.splits[name]) for name in ("train", "val", "test")]
    assert "".join(parts) == text  # in order, nothing lost, nothing shared
    assert all(part.startswith(("\n", " ", "N", "A")) for part in parts[1:])
    assert parts[0].endswith("\n") and parts[1].endswith("\n")
    assert len(parts[1]) == pytest.approx(0.05 * len(text), abs=120)
    inputs, targets = data.on_after_batch_transfer(next(iter(data.val_dataloader())), 0)
    assert inputs.shape == (4, 32) and torch.equal(inputs[:, 1:], targets[:, :-1])
    assert torch.equal(inputs[0], data.splits["val"][:32])
    assert torch.equal(inputs[1], data.splits["val"][32:64])


def test_line_cut_moves_to_the_next_line():
    assert line_cut("ab\ncd\nef", 0.5) == 6  # from position 4 ("d") to the start of "ef"
    assert line_cut("abcdef", 0.5) == 6  # no later line: the end


def test_training_windows_depend_on_seed_and_batch_count_only(tmp_path):
    data = TextDataModule(str(write_text(tmp_path)), context=16, batch_size=8, seed=3)
    data.setup()
    first = data.random_windows(torch.device("cpu"))
    again = data.random_windows(torch.device("cpu"))
    assert torch.equal(first, again)  # same (seed, rank, batches seen): same windows
    train = data.splits["train"]
    for window in first:  # each is a real stretch of the training text
        start = next(i for i in range(len(train) - 16) if torch.equal(train[i : i + 17], window))
        assert start >= 0
    other = TextDataModule(str(write_text(tmp_path)), context=16, batch_size=8, seed=4)
    other.setup()
    assert not torch.equal(first, other.random_windows(torch.device("cpu")))


def test_warmup_then_cosine_to_the_floor():
    factor = warmup_cosine(warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert factor(0) == pytest.approx(1 / 11)
    assert factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55)
    assert factor(110) == pytest.approx(0.1) == factor(500)


def tiny_run(tmp_path: Path, text: Path, *extra: str) -> list[str]:
    return [
        f"--config={REPO / 'configs/lab2/gpt_small.yaml'}",
        f"--data.path={text}",
        "--data.context=16",
        "--data.batch_size=4",
        "--data.batches_per_epoch=3",
        "--model.init_args.model.init_args.context=16",
        "--model.init_args.model.init_args.width=16",
        "--model.init_args.model.init_args.layers=1",
        "--model.init_args.model.init_args.heads=2",
        "--model.init_args.sample_length=20",
        "--trainer.accelerator=cpu",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
        *extra,
    ]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_runs_one_batch_on_a_tiny_text(config, tmp_path):
    text = write_text(tmp_path, repeats=30)
    main(
        "lab2",
        [
            "fit",
            f"--config={config}",
            f"--data.path={text}",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
        ],
    )


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def test_same_config_twice_and_a_resumed_run_give_the_same_weights(tmp_path):
    text = write_text(tmp_path)
    main("lab2", ["fit", *tiny_run(tmp_path / "a", text, "--trainer.max_epochs=2")])
    main("lab2", ["fit", *tiny_run(tmp_path / "b", text, "--trainer.max_epochs=1")])
    main(
        "lab2",
        ["fit", *tiny_run(tmp_path / "b", text, "--trainer.max_epochs=2", "--ckpt_path=last")],
    )
    main("lab2", ["fit", *tiny_run(tmp_path / "c", text, "--trainer.max_epochs=2")])
    a, b, c = (last_checkpoint(tmp_path / name) for name in "abc")
    assert a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        assert torch.equal(value, c["state_dict"][key]), key  # same config, same numbers
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key  # resumed
    assert a["hyper_parameters"]["vocabulary"] == "".join(sorted(set(VERSES)))
    assert a["network"]["class_path"] == "lab2.models.CharGPT"
    samples = sorted((tmp_path / "a").glob("version_*/samples/step_*.txt"))
    assert [p.name for p in samples] == ["step_000003.txt", "step_000006.txt"]
    assert samples[0].read_text().startswith("Nel mezzo del cammin di nostra vita")


def test_test_reports_loss_in_nats_and_bits(tmp_path, capsys):
    text = write_text(tmp_path)
    main("lab2", ["fit", *tiny_run(tmp_path, text, "--trainer.max_epochs=1")])
    main("lab2", ["test", *tiny_run(tmp_path, text), "--ckpt_path=best"])
    out = capsys.readouterr().out
    nats = float(out.split("test/loss")[1].split()[1])
    bits = float(out.split("test/bpc")[1].split()[1])
    assert bits == pytest.approx(nats / 0.6931471805599453, rel=1e-3)


def error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main("lab2", argv)
    message = str(stop.value.code) if stop.value.code not in (None, 0) else ""
    assert message.startswith("error:"), message
    assert "\n" not in message
    return message


def test_bad_texts_stop_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere.txt"
    assert f"text file {missing} does not exist" in error_line(
        capsys, ["fit", *tiny_run(tmp_path / "r", missing)]
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "is empty" in error_line(capsys, ["fit", *tiny_run(tmp_path / "r", empty)])
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(("perche\xe9 " * 500).encode("latin-1"))
    assert "is not UTF-8 text" in error_line(capsys, ["fit", *tiny_run(tmp_path / "r", latin)])
    short = tmp_path / "short.txt"
    short.write_text(VERSES * 2)
    assert "fewer than one window" in error_line(capsys, ["fit", *tiny_run(tmp_path / "r", short)])
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_a_context_longer_than_the_models_stops_in_one_line(tmp_path, capsys):
    text = write_text(tmp_path)
    message = error_line(capsys, ["fit", *tiny_run(tmp_path, text, "--data.context=32")])
    assert "data.context 32 is longer than the model's context 16" in message


def test_a_checkpoint_of_another_text_or_lab_stops_in_one_line(tmp_path, capsys):
    text = write_text(tmp_path)
    main("lab2", ["fit", *tiny_run(tmp_path / "run", text, "--trainer.max_epochs=1")])
    other = tmp_path / "other.txt"
    other.write_text(VERSES.replace("q", "x") * 60)  # as many characters, one of them other
    message = error_line(capsys, ["test", *tiny_run(tmp_path / "run", other), "--ckpt_path=best"])
    assert "the checkpoint was trained on a text of other characters" in message
    capital = tmp_path / "capital.txt"
    capital.write_text(VERSES.upper() * 60)
    message = error_line(capsys, ["fit", *tiny_run(tmp_path / "new", capital)])
    assert "sample_prompt: characters not in the model's vocabulary: 'acdeilmnorstvz'" in message
    foreign = tmp_path / "lab1.ckpt"
    torch.save({"state_dict": {"model.features.0.weight": torch.zeros(3, 3)}}, foreign)
    message = error_line(
        capsys, ["test", *tiny_run(tmp_path / "run", text), f"--ckpt_path={foreign}"]
    )
    assert str(foreign) in message


def test_longest_common_substring_matches_a_brute_force_search():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        text = "".join("abc"[i] for i in torch.randint(3, (30,), generator=generator))
        reference = "".join("abc"[i] for i in torch.randint(3, (60,), generator=generator))
        found = longest_common_substring(text, reference)
        longest = max(
            (text[i:j] for i in range(30) for j in range(i, 31) if text[i:j] in reference),
            key=len,
        )
        assert found in text and found in reference and len(found) == len(longest)


def test_verses_measures_line_length_and_terza_rima():
    terza_rima = "vita\noscura\nsmarrita.\n\ndura\nforte\npaura!\n\nmorte;\ntrovai,\nscorte.\n"
    verses = Verses.of(terza_rima)
    assert verses.mean_length == pytest.approx(sum(map(len, terza_rima.split())) / 9)
    # pairs (n, n + 2): ta-ta, ra-ra, ta-te, ra-ra, te-te, ra-ai, te-te → 5 of 7
    assert verses.rhyme_share == pytest.approx(5 / 7)
    assert Verses.of("uno\ndue\ntre\nquattro\n").rhyme_share == 0


def test_report_tables_a_fitted_and_tested_run_with_curves_and_samples(tmp_path, capsys):
    text = write_text(tmp_path)
    main("lab2", ["fit", *tiny_run(tmp_path / "run", text, "--trainer.max_epochs=2")])
    main("lab2", ["test", *tiny_run(tmp_path / "run", text), "--ckpt_path=best"])
    runs = f'{{"tiny": "{tmp_path / "run"}"}}'
    output = tmp_path / "results" / "study.md"
    main("lab2", ["report", f"--runs={runs}", "--length=50", f"--output={output}"])
    row = output.read_text().splitlines()[2].split(" | ")
    assert row[0] == "| tiny" and row[3:5] == ["6", "384"]  # 6 steps of 4 x 16 characters
    tested = float(row[8])
    assert tested == pytest.approx(
        float(capsys.readouterr().out.split("test/loss")[1].split()[1]), abs=1e-3
    )
    samples = (output.parent / "samples.md").read_text()
    assert "Nel mezzo del cammin di nostra vita" in samples
    assert (output.parent / "loss_curves.png").stat().st_size > 0
    assert "The held-out text itself" in output.read_text()
    missing = error_line(capsys, ["report", f'--runs={{"x": "{tmp_path / "none"}"}}'])
    assert "no finished fit" in missing
