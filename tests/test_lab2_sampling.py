"""Lab 2's sampling: causal masking, the KV cache against full recomputation, seeds, and the
``generate`` command end to end from a real (tiny) ``fit`` checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.cli import main
from lab2.generate import main as generate_command
from lab2.models import BigramLM, CharGPT
from lab2.sampling import generate
from tests.conftest import REPO

#: a small text of the vocabulary's characters (the generate tests' prompts use these)
VERSE = "nel mezzo del cammin di nostra vita\nmi ritrovai per una selva oscura\n"


def tiny_gpt(context: int = 16, seed: int = 0) -> CharGPT:
    """A random CharGPT whose weights are large enough for confident, varied predictions."""
    torch.manual_seed(seed)
    network = CharGPT(vocab_size=11, context=context, layers=2, heads=2, width=16, dropout=0.0)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0, 0.3)
    return network.eval()


def test_a_later_character_never_changes_the_logits_of_earlier_positions():
    network = tiny_gpt()
    ids = torch.randint(11, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 11
    with torch.no_grad():
        before, after = network(ids), network(changed)
    torch.testing.assert_close(after[:, :9], before[:, :9], rtol=0, atol=1e-6)
    assert (after[:, 9:] - before[:, 9:]).abs().amax() > 1e-2  # the changed ones do change


def test_the_cached_forward_fed_in_pieces_equals_the_full_forward():
    network = tiny_gpt()
    ids = torch.randint(11, (2, 16), generator=torch.Generator().manual_seed(2))
    cache: list = []
    with torch.no_grad():
        full = network(ids)
        pieces = [network(ids[:, a:b], cache) for a, b in ((0, 5), (5, 6), (6, 13), (13, 16))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("top_k", [1, None], ids=["greedy", "sampled"])
def test_generating_with_the_cache_equals_recomputing_the_window(top_k):
    network = tiny_gpt(context=8)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    # 40 new characters cross the window of 8 (restarts every 4 characters) many times
    texts = [
        generate(
            network,
            prompt,
            40,
            top_k=top_k,
            generator=torch.Generator().manual_seed(3),
            use_cache=use_cache,
        )
        for use_cache in (True, False)
    ]
    assert texts[0].shape == (2, 43)
    assert torch.equal(texts[0], texts[1])
    assert not torch.equal(texts[0][0, 3:], texts[0][1, 3:])  # the two prompts' texts differ


def test_the_same_seed_gives_the_same_text_and_another_seed_another():
    network = BigramLM(vocab_size=50)
    torch.nn.init.zeros_(network.table.weight)  # every character equally likely: seeds matter
    prompt = torch.zeros(1, 1, dtype=torch.long)

    def sample(seed: int) -> torch.Tensor:
        return generate(network, prompt, 100, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


# --- the command ------------------------------------------------------------------------------


def fit_tiny_checkpoint(root: Path) -> Path:
    """A real ``python -m lab2 fit`` of a one-layer CharGPT on a few verses (a second or two)."""
    text = root / "verses.txt"
    text.write_text(VERSE * 12)
    run = root / "run"
    network = "--model.init_args.model.init_args"
    main(
        "lab2",
        [
            "fit",
            f"--config={REPO / 'configs/lab2/gpt_small.yaml'}",
            f"--data.path={text}",
            "--data.context=16",
            "--data.batch_size=4",
            "--data.batches_per_epoch=2",
            f"{network}.context=16",
            f"{network}.width=16",
            f"{network}.layers=1",
            f"{network}.heads=2",
            "--model.init_args.sample_length=0",
            "--trainer.max_epochs=1",
            "--trainer.accelerator=cpu",
            "--trainer.precision=32-true",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            f"--trainer.default_root_dir={run}",
        ],
    )
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return fit_tiny_checkpoint(tmp_path_factory.mktemp("lab2"))


def run_generate(checkpoint: Path, *options: str) -> None:
    main("lab2", ["generate", f"--checkpoint={checkpoint}", "--device=cpu", *options])


def test_generate_prints_and_saves_the_same_text_for_the_same_seed(checkpoint, capsys):
    run_generate(checkpoint, "--prompt=nel mezzo", "--length=30", "--seed=5")
    first = capsys.readouterr().out
    run_generate(checkpoint, "--prompt=nel mezzo", "--length=30", "--seed=5")
    assert capsys.readouterr().out == first
    assert first.startswith("nel mezzo") and len(first) == len("nel mezzo") + 30 + 1
    saved = checkpoint.parent.parent / "samples" / "generate_seed5.txt"
    assert saved.read_text() == first
    assert not saved.with_name("generate_seed5_2.txt").exists()  # the same text: one file


def test_generate_never_replaces_a_file_that_holds_another_text(checkpoint, tmp_path, capsys):
    out = tmp_path / "dante.txt"
    out.write_text("keep me\n")
    run_generate(checkpoint, "--prompt=nel", "--length=20", f"--out={out}")
    text = capsys.readouterr().out
    assert out.read_text() == "keep me\n"
    assert (tmp_path / "dante_2.txt").read_text() == text


def test_generate_continues_a_long_prompt_from_its_last_context_characters(checkpoint, tmp_path):
    long_prompt = VERSE * 3  # 210 characters; the model's context is 16

    def samples(prompt: str, out: str) -> list[str]:
        options = ["--length=25", "--num_samples=2", "--seed=7", f"--out={tmp_path / out}"]
        return generate_command([f"--checkpoint={checkpoint}", f"--prompt={prompt}", *options])

    long, short = samples(long_prompt, "long.txt"), samples(long_prompt[-16:], "short.txt")
    assert [text.removeprefix(long_prompt[:-16]) for text in long] == short
    assert short[0] != short[1]  # two samples, drawn at once
    assert (tmp_path / "short.txt").read_text().count("=== sample") == 2


BAD_INPUTS = {
    "a temperature of 0": (["--temperature=0"], "temperature must be > 0"),
    "a negative temperature": (["--temperature=-1"], "temperature must be > 0"),
    "top_k 0": (["--top_k=0"], "top_k must be ≥ 1"),
    "top_p 0": (["--top_p=0"], "top_p must be in (0, 1]"),
    "top_p above 1": (["--top_p=1.5"], "top_p must be in (0, 1]"),
    "a negative length": (["--length=-1"], "--length"),
    "an empty prompt": (["--prompt="], "at least one character"),
    "unknown characters": (["--prompt=Nel mezzo!"], "not in the model's vocabulary: '!N'"),
}


@pytest.mark.parametrize("options, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_generate_answers_bad_settings_in_one_line_and_writes_nothing(
    checkpoint, tmp_path, capsys, options, message
):
    out = tmp_path / "sample.txt"
    with pytest.raises(SystemExit) as stopped:
        run_generate(checkpoint, f"--out={out}", *options)
    error = str(stopped.value.code)
    assert error.startswith("error: ") and message in error and "\n" not in error
    assert capsys.readouterr().out == "" and not any(tmp_path.iterdir())


def write_checkpoint(path: Path, **content) -> Path:
    torch.save({"pytorch-lightning_version": "2.5.0", **content}, path)
    return path


def test_generate_refuses_missing_damaged_and_foreign_checkpoints_in_one_line(tmp_path):
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"PK\x03\x04 not a zip archive")
    lab1 = write_checkpoint(
        tmp_path / "lab1.ckpt",
        state_dict={"model.fc.weight": torch.zeros(10, 4)},
        hyper_parameters={"num_classes": 10},
    )
    popen = write_checkpoint(
        tmp_path / "popen.ckpt",
        network={"class_path": "subprocess.Popen", "init_args": {"args": ["true"]}},
        hyper_parameters={"vocabulary": "abc"},
    )
    cases = {
        tmp_path / "missing.ckpt": "does not exist",
        popen: "is no nn.Module class",
        damaged: "cannot be read",
        lab1: "is not a Lab 2 checkpoint",
    }
    for path, message in cases.items():
        with pytest.raises(SystemExit) as stopped:
            run_generate(path, f"--out={tmp_path / 'sample.txt'}")
        error = str(stopped.value.code)
        assert error.startswith("error: ") and message in error and "\n" not in error, error
    assert not (tmp_path / "sample.txt").exists()
