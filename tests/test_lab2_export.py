"""Lab 2's export: ``to_gpt2`` computes our logits and greedy text, the character tokenizer
round-trips Dante, and ``python -m lab2 export`` writes a folder transformers loads alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from common.cli import main
from lab2.data import Vocabulary
from lab2.export import ExportError, character_tokenizer, to_gpt2
from lab2.generate import load_network
from lab2.models import BigramLM, CharGPT
from lab2.sampling import generate
from tests.test_lab2_sampling import fit_tiny_checkpoint, tiny_gpt, write_checkpoint

DANTE = (
    "Nel mezzo del cammin di nostra vita\nmi ritrovai per una selva oscura,\n"
    "ché la diritta via era smarrita.\n\n  Ahi quanto a dir qual era è cosa dura\n"
    "«esta selva selvaggia e aspra e forte» ; ’l pensier rinova la paura !"
)


def test_gpt2_computes_the_same_logits():
    network = tiny_gpt()
    network.transformer.drop.p = 0.3  # the config's dropout travels; eval mode turns it off
    ids = torch.randint(11, (3, 16), generator=torch.Generator().manual_seed(0))
    gpt2 = to_gpt2(network)
    assert gpt2.config.n_positions == 16 and gpt2.config.n_layer == 2 and gpt2.config.n_head == 2
    with torch.no_grad():
        torch.testing.assert_close(gpt2(ids).logits, network(ids), rtol=0, atol=1e-5)


def test_gpt2_greedy_generation_gives_our_greedy_text():
    network = tiny_gpt()
    prompt = torch.tensor([[1, 2, 3], [7, 0, 9]])
    ours = generate(network, prompt, 13, top_k=1)  # 16 characters: within GPT-2's positions
    theirs = to_gpt2(network).generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=13,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(theirs, ours)
    assert not torch.equal(ours[0, 3:], ours[1, 3:])


@pytest.mark.parametrize(
    "network, message",
    [
        (BigramLM(11), "only a CharGPT"),
        (CharGPT(11, context=8, layers=1, heads=2, width=8, bias=False), "bias: true"),
    ],
    ids=["bigram", "no biases"],
)
def test_only_a_chargpt_with_biases_is_exported(network, message):
    with pytest.raises(ExportError, match=message):
        to_gpt2(network)


def test_the_saved_tokenizer_round_trips_dante(tmp_path):
    vocabulary = Vocabulary.of(DANTE)
    character_tokenizer(vocabulary.characters, context=64).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    ids = tokenizer(DANTE)["input_ids"]
    assert ids == vocabulary.encode(DANTE).tolist()
    assert tokenizer.decode(ids) == DANTE


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return fit_tiny_checkpoint(tmp_path_factory.mktemp("lab2"))


def run_export(path: Path, out: Path, *options: str) -> None:
    main("lab2", ["export", f"--checkpoint={path}", f"--out={out}", *options])


def test_the_exported_folder_is_our_model_for_transformers(checkpoint, tmp_path):
    out = tmp_path / "dante-gpt2"
    run_export(checkpoint, out)
    gpt2 = GPT2LMHeadModel.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    network, vocabulary = load_network(checkpoint)
    verse = "nel mezzo del\nca"  # the context: 16 characters
    ids = tokenizer(verse, return_tensors="pt")["input_ids"]
    assert torch.equal(ids[0], vocabulary.encode(verse))
    with torch.no_grad():
        torch.testing.assert_close(gpt2(ids).logits, network(ids), rtol=0, atol=1e-5)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staging left


def test_export_replaces_its_files_only_when_told(checkpoint, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(SystemExit) as stopped:
        run_export(checkpoint, out)
    error = str(stopped.value.code)
    assert "already holds files" in error and "--overwrite" in error and "\n" not in error
    assert [p.name for p in out.iterdir()] == ["notes.md"]
    run_export(checkpoint, out, "--overwrite=true")
    assert (out / "notes.md").read_text() == "mine"
    vocabulary = load_network(checkpoint)[1]
    assert GPT2LMHeadModel.from_pretrained(out).config.vocab_size == len(vocabulary)


def test_export_refuses_other_checkpoints_in_one_line_and_writes_nothing(tmp_path):
    bigram = write_checkpoint(
        tmp_path / "bigram.ckpt",
        network={"class_path": "lab2.models.BigramLM", "init_args": {"vocab_size": 3}},
        hyper_parameters={"vocabulary": "abc"},
        state_dict={"model.table.weight": torch.zeros(3, 3)},
    )
    lab1 = write_checkpoint(
        tmp_path / "lab1.ckpt",
        hyper_parameters={"num_classes": 10},
        state_dict={"model.fc.weight": torch.zeros(10, 4)},
    )
    for path, message in {bigram: "only a CharGPT", lab1: "not a Lab 2 checkpoint"}.items():
        with pytest.raises(SystemExit) as stopped:
            run_export(path, tmp_path / "hf")
        error = str(stopped.value.code)
        assert error.startswith("error: ") and message in error and "\n" not in error, error
        assert not (tmp_path / "hf").exists()
