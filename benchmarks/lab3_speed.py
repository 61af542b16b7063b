"""Lab 3 speed: stories per minute for a batch of images, batched vs one by one, fp32 vs bf16.

Builds randomly initialised models of the real sizes from their published configurations (no
download): BLIP base captioning (``BlipConfig()``'s defaults are that model: ViT-B/16 at 384 px,
BERT-base-sized decoder, 30,524 tokens) and TinyStories-33M (GPT-Neo, hidden 768, 4 layers,
16 heads, global/local attention with window 256, 50,257 tokens), with word-level tokenizers of
the same vocabulary sizes. Saves them with ``save_pretrained``, loads them through
``lab3.story.captioner.Captioner`` / ``lab3.story.writer.StoryWriter`` (``from_pretrained``),
then times caption → story for the same images and seed (sampling on, the configs' settings):

  (1) one batched pass over ``--images`` images, and (2) one image at a time,

in fp32 and under bf16 autocast (what ``--trainer.precision bf16-mixed`` does), and checks that
batched and one-by-one stories agree. Random weights never emit end-of-text, so every story runs
to ``--max_new_tokens``: the same work in every mode. ``--tiny`` builds a few layers of width 32
instead (same tokenizers, 32-px images): a quick check that it runs, not a measurement.

    python benchmarks/lab3_speed.py [--images 16] [--max_new_tokens 32] [--device cpu] [--tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors
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

from lab3.story.captioner import Captioner
from lab3.story.generator import ImageStoryGenerator
from lab3.story.inputs import ImageInput
from lab3.story.writer import StoryWriter

PROMPT_WORDS = ["This", "is", "a", "story", "about", "One", "day,"]


def word_tokenizer(size: int, specials: dict[int, str]) -> Tokenizer:
    """Word-level vocabulary of ``size`` entries: the prompt's words, specials at their real ids."""
    vocab = {f"w{i}": i for i in range(size)}
    for i, word in enumerate(PROMPT_WORDS, start=1000):
        vocab[word] = i
    vocab.update({token: i for i, token in specials.items()})
    vocab = {token: i for token, i in vocab.items() if specials.get(i, token) == token}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=specials[min(specials)]))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def save_models(root: Path, tiny: bool = False) -> tuple[str, str]:
    """BLIP base and TinyStories-33M shapes (``tiny``: a few layers of width 32, 32-px images for
    quick checks), random weights, real vocabulary sizes; returns their two folders."""
    bert = word_tokenizer(30524, {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]",
                                  103: "[MASK]", 30522: "[DEC]"})  # fmt: skip
    bert.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101), ("[SEP]", 102)]
    )
    text = BertTokenizerFast(tokenizer_object=bert, bos_token="[DEC]", unk_token="[UNK]",
                             sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]")  # fmt: skip
    small = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 32,
             "intermediate_size": 64}  # fmt: skip
    blip = (
        BlipConfig(
            vision_config={**small, "image_size": 32, "patch_size": 16},
            text_config={**small, "vocab_size": 30524},
        )
        if tiny
        else BlipConfig()
    )
    BlipForConditionalGeneration(blip).save_pretrained(root / "blip")
    size = {"height": 32, "width": 32} if tiny else None
    BlipProcessor(BlipImageProcessor(size=size), text).save_pretrained(root / "blip")
    shape = (
        {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
         "attention_types": [[["global", "local"], 1]]}
        if tiny
        else {"hidden_size": 768, "num_layers": 4, "num_heads": 16,
              "attention_types": [[["global", "local"], 2]]}
    )  # fmt: skip
    neo = GPTNeoConfig(
        vocab_size=50257, window_size=256, max_position_embeddings=2048, bos_token_id=50256,
        eos_token_id=50256, **shape,
    )  # fmt: skip
    GPTNeoForCausalLM(neo).save_pretrained(root / "neo")
    gpt = word_tokenizer(50257, {50256: "<|endoftext|>"})
    PreTrainedTokenizerFast(
        tokenizer_object=gpt, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    ).save_pretrained(root / "neo")
    return str(root / "blip"), str(root / "neo")


def build_generator(
    device: str = "cpu", caption_tokens: int = 20, tiny: bool = False
) -> ImageStoryGenerator:
    """Captioner and story writer of :func:`save_models`, loaded as the lab loads them."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        blip, neo = save_models(Path(folder), tiny)
        captioner = Captioner(blip, max_new_tokens=caption_tokens)
        return ImageStoryGenerator(captioner, StoryWriter(neo)).to(device)


def noise_images(count: int) -> list[ImageInput]:
    """``count`` different 480×360 noise images."""
    images = [Image.effect_noise((480, 360), 40 + i).convert("RGB") for i in range(count)]
    return [ImageInput(f"noise{i}", image, None) for i, image in enumerate(images)]


def timed(generator, items, length, batched: bool, bf16: bool) -> tuple[float, list[str]]:
    device = next(generator.parameters()).device
    autocast = torch.autocast(device.type, torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = time.perf_counter()
    with autocast:
        if batched:
            results = generator.stories(items, length, seed=0)
        else:
            results = [r for item in items for r in generator.stories([item], length, seed=0)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, [r.story for r in results]


@dataclass
class Row:
    """One precision: seconds for the images batched and one by one, stories that agree."""

    precision: str
    images: int
    batched_seconds: float
    single_seconds: float
    same_stories: int

    @property
    def speedup(self) -> float:
        return self.single_seconds / self.batched_seconds

    def markdown(self) -> str:
        per_minute = 60 * self.images
        return (
            f"| {self.precision} | {per_minute / self.batched_seconds:.1f} "
            f"({self.batched_seconds:.1f} s) | {per_minute / self.single_seconds:.1f} "
            f"({self.single_seconds:.1f} s) | {self.speedup:.2f}x | "
            f"{self.same_stories}/{self.images} |"
        )


HEADER = [
    "| precision | batched stories/min | one-by-one stories/min | speed-up | same stories |",
    "|---|---:|---:|---:|---:|",
]


def compare(
    generator: ImageStoryGenerator, items: list[ImageInput], length: int, precision: str
) -> Row:
    """Stories for ``items`` in one batched pass and one by one, under ``precision`` (fp32|bf16)."""
    bf16 = precision == "bf16"
    batch_s, batch_stories = timed(generator, items, length, True, bf16)
    single_s, single_stories = timed(generator, items, length, False, bf16)
    same = sum(a == b for a, b in zip(batch_stories, single_stories, strict=True))
    return Row(precision, len(items), batch_s, single_s, same)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=32, help="story length")
    parser.add_argument("--caption_tokens", type=int, default=20)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models (a quick check)")
    args = parser.parse_args(argv)
    generator = build_generator(args.device, args.caption_tokens, args.tiny)
    millions = [sum(p.numel() for p in m.parameters()) / 1e6 for m in generator.children()]
    print(f"captioner {millions[0]:.0f}M parameters, writer {millions[1]:.0f}M; "
          f"device {args.device}, {torch.get_num_threads()} threads; {args.images} images, "
          f"captions {args.caption_tokens} tokens, stories {args.max_new_tokens} new tokens"
    )  # fmt: skip
    items = noise_images(args.images)
    timed(generator, items[:2], args.max_new_tokens, batched=True, bf16=False)  # warm-up
    print("\n".join(HEADER))
    for precision in args.precisions:
        print(compare(generator, items, args.max_new_tokens, precision).markdown(), flush=True)


if __name__ == "__main__":
    main()
