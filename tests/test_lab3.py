"""Lab 3 end to end on tiny random models saved with ``save_pretrained`` (nothing downloaded):
the Python API, ``python -m lab3 predict`` and the interactive mode, through ``from_pretrained``."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from PIL import Image
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tokenizer_trainers
from transformers import (
    BertTokenizerFast,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
    GPTNeoConfig,
    GPTNeoForCausalLM,
    PreTrainedTokenizerFast,
)

from common.cli import main
from lab3 import ImageInputError, ImageStoryGenerator
from lab3.story.captioner import Captioner
from lab3.story.writer import StoryWriter, trim_to_sentence
from tests.conftest import REPO
from tests.test_lab3_inputs import Handler, image_server

#: captions without sentence ends, so that a story's continuation is what trimming acts on
CAPTIONS = ["a picture of a bear in the woods", "a dog runs on the beach with a red ball"] * 4
STORIES = [
    'One day, the little cat saw a big bird. It was happy. "Hello!" said the cat.',
    "Tom and Lily went to the park? They played all day and had fun!",
] * 4
LENGTHS = "{short: 6, medium: 10, long: 16}"
PROMPT = "This is a story about {caption} and one day"  # no sentence end either


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """A tiny BLIP (WordPiece tokenizer) and a tiny GPT-Neo (byte-level BPE), both trained here."""
    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    wordpiece.train_from_iterator(
        CAPTIONS, tokenizer_trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials)
    )
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    wordpiece.decoder = decoders.WordPiece()
    bert = BertTokenizerFast(tokenizer_object=wordpiece, bos_token="[DEC]")
    small = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 32}
    blip = BlipConfig(
        vision_config={**small, "intermediate_size": 37, "image_size": 32, "patch_size": 16},
        text_config={
            **small, "intermediate_size": 37, "vocab_size": len(bert),
            "max_position_embeddings": 64, "pad_token_id": 0, "sep_token_id": 3,
            "eos_token_id": 3, "bos_token_id": 5,
        },
    )  # fmt: skip
    BlipForConditionalGeneration(blip).save_pretrained(root / "blip")
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=bert).save_pretrained(root / "blip")

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        STORIES,
        tokenizer_trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    gpt = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    neo = GPTNeoConfig(
        vocab_size=len(gpt), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
        attention_types=[[["global", "local"], 1]], window_size=16, max_position_embeddings=256,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    writer = GPTNeoForCausalLM(neo)
    writer.save_pretrained(root / "neo")
    gpt.save_pretrained(root / "neo")
    return {"blip": str(root / "blip"), "neo": str(root / "neo")}


@pytest.fixture(scope="session")
def generator(tiny_models) -> ImageStoryGenerator:
    lengths = {"short": 6, "medium": 10, "long": 16}
    writer = StoryWriter(tiny_models["neo"], prompt=PROMPT, lengths=lengths)
    return ImageStoryGenerator(Captioner(tiny_models["blip"], max_new_tokens=8), writer)


@pytest.fixture
def photos(tmp_path):
    """Three images of different sizes and colours, and a text file in between."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, size, color in [("a.png", (40, 30), "red"), ("c.jpg", (64, 64), "navy")]:
        Image.new("RGB", size, color).save(folder / name)
    Image.effect_noise((50, 20), 80).save(folder / "d.png")
    (folder / "b.png").write_text("not an image")
    return folder


def test_story_continues_the_prompt_up_to_a_sentence_end(generator, photos):
    result = generator.generate(photos / "a.png", length="long", seed=0)
    prompt = PROMPT.format(caption=result.caption)
    assert result.story.startswith(prompt) and len(result.story) > len(prompt)
    assert result.story == trim_to_sentence(result.story)
    assert result.word_count == len(result.story.split())
    assert (result.source, result.seed, result.error) == (str(photos / "a.png"), 0, None)


def test_same_seed_same_story_other_seed_other_story(generator, photos):
    image = Image.open(photos / "d.png")  # a PIL image works too
    stories = [generator.generate(image, "long", seed).story for seed in (3, 3, 4)]
    assert stories[0] == stories[1] != stories[2]
    drawn = generator.generate(image, "long")  # seed=None: drawn, reported, reusable
    assert generator.generate(image, "long", drawn.seed).story == drawn.story


def test_length_presets_set_max_new_tokens(generator, photos, monkeypatch):
    calls = []
    generate = generator.writer.model.generate

    def spy(**kwargs):
        output = generate(**kwargs)
        calls.append((kwargs["max_new_tokens"], output.shape[1] - kwargs["input_ids"].shape[1]))
        return output

    monkeypatch.setattr(generator.writer.model, "generate", spy)
    stories = {n: generator.generate(photos / "c.jpg", n, 1).story for n in ("short", "long", 3)}
    assert [limit for limit, _ in calls] == [6, 16, 3]
    assert all(new <= limit for limit, new in calls)
    assert stories["long"].startswith(stories["short"])  # same seed: the same first tokens
    with pytest.raises(ValueError, match="unknown length 'epic': use one of short, medium, long"):
        generator.generate(photos / "c.jpg", "epic")


@pytest.mark.parametrize("do_sample", [True, False])
def test_a_batch_writes_the_stories_of_one_by_one(tiny_models, do_sample):
    writer = StoryWriter(tiny_models["neo"], prompt=PROMPT, do_sample=do_sample)
    captions = ["a bear", "a dog runs on the beach with a red ball and a cat", "the cat"]
    batched = writer(captions, 24, seeds=[5, 5, 9])
    alone = [writer([c], 24, seeds=[s])[0] for c, s in zip(captions, [5, 5, 9], strict=True)]
    assert batched == alone
    assert batched[0][len("This is a story about a bear and one day") :]  # continued
    assert (batched[0] == batched[1]) is False


def test_padding_does_not_count_as_a_repeated_token(tiny_models):
    """Left padding is the end-of-text token: penalised as "already used", padded rows could not
    end where they end alone."""
    writer = StoryWriter(tiny_models["neo"], prompt=PROMPT, repetition_penalty=100.0)
    with torch.no_grad():  # make end of text the likeliest next token everywhere
        eos = writer.model.transformer.wte.weight[writer.tokenizer.eos_token_id]
        writer.model.transformer.ln_f.bias += 5 * eos / eos.norm() ** 2
    captions = ["a bear", "a dog runs on the beach with a red ball"]
    assert writer(captions, 8, [0, 0]) == [PROMPT.format(caption=c) for c in captions]


def test_batch_reports_bad_inputs_and_tells_the_others(generator, photos):
    results = generator.generate_batch([photos, photos / "gone.jpg"], "short", seed=2, batch_size=2)
    assert [r.source for r in results] == [
        str(photos / n) for n in ("a.png", "b.png", "c.jpg", "d.png", "gone.jpg")
    ]
    assert [r.error is None for r in results] == [True, False, True, True, False]
    assert results[1].error == f"{photos / 'b.png'}: not an image file (cannot identify its format)"
    assert results[4].error == f"{photos / 'gone.jpg'}: no such file or folder"
    for result in (results[0], results[2], results[3]):
        assert result == generator.generate(result.source, "short", seed=2)
    with pytest.raises(ImageInputError, match="gone.jpg: no such file"):
        generator.generate(photos / "gone.jpg")


def test_prefix_conditions_the_caption_and_is_removed(tiny_models, photos):
    captioner = Captioner(tiny_models["blip"], prefix="a picture of", max_new_tokens=6)
    images = [Image.open(photos / n).convert("RGB") for n in ("a.png", "c.jpg")]
    raw = captioner.processor.batch_decode(
        captioner.model.generate(
            **captioner.processor(images=images, text=["a picture of"] * 2, return_tensors="pt"),
            max_new_tokens=6,
        ),
        skip_special_tokens=True,
    )
    assert all(text.startswith("a picture of") for text in raw)
    assert captioner(images) == [text[len("a picture of") :].strip() for text in raw]


def predict_args(tiny_models, run_dir, images) -> list[str]:
    model = "--model.init_args"
    return [
        "predict",
        f"--config={REPO / 'configs/lab3/story.yaml'}",
        f"{model}.captioner.init_args.model={tiny_models['blip']}",
        f"{model}.captioner.init_args.max_new_tokens=8",
        f"{model}.writer.init_args.model={tiny_models['neo']}",
        f"{model}.writer.init_args.lengths={LENGTHS}",
        f"{model}.writer.init_args.prompt={PROMPT}",
        f"{model}.length=short",
        f"{model}.seed=2",
        f"--data.images=[{', '.join(map(str, images))}]",
        "--data.batch_size=2",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
    ]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_predict_writes_stories_and_report(
    tiny_models, generator, photos, tmp_path, precision, capsys
):
    run = tmp_path / "run"
    images = [photos, photos / "gone.jpg"]
    main("lab3", [*predict_args(tiny_models, run, images), f"--trainer.precision={precision}"])
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"3 stories written to {run / 'stories.md'} (2 of 5 inputs failed: see "
        f"{run / 'stories.jsonl'})"
    )
    records = [json.loads(line) for line in (run / "stories.jsonl").read_text().splitlines()]
    assert [r["source"].rsplit("/", 1)[1] for r in records] == [
        "a.png", "b.png", "c.jpg", "d.png", "gone.jpg"
    ]  # fmt: skip
    assert [r["error"] is None for r in records] == [True, False, True, True, False]
    assert records[1]["error"].endswith("b.png: not an image file (cannot identify its format)")
    report = (run / "stories.md").read_text()
    assert "3 stories, 2 errors" in report and report.count("![") == 3
    for record in (records[0], records[2], records[3]):
        assert (run / record["image"]).is_file() and record["story"] in report
        assert record["word_count"] == len(record["story"].split())
        assert record["story"] == trim_to_sentence(record["story"])
        if precision == "32-true":  # the same story as the Python API, one image at a time
            assert record["story"] == generator.generate(record["source"], "short", 2).story


def test_predict_ends_with_an_error_when_no_input_could_be_read(
    tiny_models, photos, tmp_path, capsys
):
    run = tmp_path / "run"
    images = [photos / "b.png", photos / "gone.jpg"]
    with pytest.raises(SystemExit) as done:
        main("lab3", predict_args(tiny_models, run, images))
    assert done.value.code == (
        f"error: none of the 2 inputs could be read: see {run / 'stories.jsonl'}"
    )
    assert len((run / "stories.jsonl").read_text().splitlines()) == 2  # the reasons are there
    main("lab3", predict_args(tiny_models, run, [photos / "a.png"]))
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"1 story written to {run / 'stories.md'} (1 input read)"
    )


def test_predict_config_errors_are_one_line(tiny_models, photos, tmp_path):
    args = predict_args(tiny_models, tmp_path, [photos])
    with pytest.raises(SystemExit, match="unknown length 'huge'"):
        main("lab3", [*args, "--model.init_args.length=huge"])


def test_sigterm_stops_predict_while_it_waits_for_a_download(tiny_models, tmp_path):
    """Lightning's SIGTERM handler only takes note (its predict loop never looks): ``python -m
    lab3 predict`` stuck on a trickling URL, far from its deadline, must still end at once."""
    Handler.trickle_started.clear()
    with image_server() as server:
        args = [*predict_args(tiny_models, tmp_path / "run", [f"{server}/trickle.png"])]
        process = subprocess.Popen(
            [sys.executable, "-m", "lab3", *args, "--data.timeout=60"],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert Handler.trickle_started.wait(180), "predict never asked for the URL"
            process.send_signal(signal.SIGTERM)
            start = time.monotonic()
            _, stderr = process.communicate(timeout=60)  # SIGTERM ignored: the server's 30 s
            seconds = time.monotonic() - start
        finally:
            process.kill()
    assert seconds < 20 and process.returncode != 0  # here: 3-6 s, most of it Python's exit
    assert stderr.strip().splitlines()[-1] == (
        "interrupted by SIGTERM (stories.jsonl keeps the finished batches)"
    )
    assert "Traceback" not in stderr


def test_interactive_mode_through_stdin(tiny_models, photos, monkeypatch, capsys):
    answers = [photos / "a.png", "short", photos / "b.png", "", "nope.png", "long",
               photos / "c.jpg", "epic", photos / "c.jpg", "4", "q"]  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{a}\n" for a in answers)))
    args = [f"--captioner.model={tiny_models['blip']}", f"--writer.model={tiny_models['neo']}",
            f"--writer.lengths={LENGTHS}", f"--writer.prompt={PROMPT}", "--seed=0",
            "--device=cpu"]  # fmt: skip
    main("lab3", ["interactive", *args])
    out = capsys.readouterr().out
    assert out.count("Caption: ") == 2 and out.count("words, seed 0)") == 2
    assert f"error: {photos / 'b.png'}: not an image file" in out
    assert "error: nope.png: no such file or folder" in out
    assert "error: unknown length 'epic'" in out
    assert out.count("Image path or URL") == 6  # it asked again after each answer, until "q"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{photos / 'a.png'}\n"))  # then end of input
    main("lab3", ["interactive", *args])
    assert "Caption: " not in capsys.readouterr().out


def test_print_config_mirrors_the_constructors(capsys):
    with pytest.raises(SystemExit) as done:
        main("lab3", ["predict", f"--config={REPO / 'configs/lab3/story.yaml'}", "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    writer = printed["model"]["init_args"]["writer"]["init_args"]
    assert writer["model"] == "roneneldan/TinyStories-33M" and writer["top_p"] == 0.9
    assert printed["trainer"]["precision"] == "32-true" and printed["trainer"]["logger"] is False
