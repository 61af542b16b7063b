"""Lab 3 speed: stories per minute for a batch of images, batched vs one by one, fp32 vs bf16.

Builds randomly initialised models of the real sizes from their published configurations (no
download): BLIP base captioning (``BlipConfig()``'s defaults are that model: ViT-B/16 at 384 px,
BERT-base-sized decoder, 30,524 tokens) and TinyStories-33M (GPT-Neo, hidden 768, 4 layers,
16 heads, global/local attention with window 256, 50,257 tokens), with word-level tokenizers of
the same vocabulary sizes. Saves them with ``save_pretrained``, loads them through
``lab3.captioner.Captioner`` / ``lab3.story.StoryWriter`` (``from_pretrained``), then times
caption → story for the same images and seed (sampling on, the configs' settings):

  (1) one batched pass over ``--images`` images, and (2) one image at a time,

in fp32 and under bf16 autocast (what ``--trainer.precision bf16-mixed`` does), and checks that
batched and one-by-one stories agree. Random weights never emit end-of-text, so every story runs
to ``--max_new_tokens``: the same work in every mode.

    python benchmarks/lab3_speed.py [--images 16] [--max_new_tokens 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
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

from lab3.captioner import Captioner
from lab3.generator import ImageStoryGenerator
from lab3.inputs import ImageInput
from lab3.story import StoryWriter

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


def save_real_size_models(root: Path) -> tuple[str, str]:
    """BLIP base and TinyStories-33M shapes, random weights, real vocabulary sizes."""
    bert = word_tokenizer(30524, {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]",
                                  103: "[MASK]", 30522: "[DEC]"})  # fmt: skip
    bert.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101), ("[SEP]", 102)]
    )
    text = BertTokenizerFast(tokenizer_object=bert, bos_token="[DEC]", unk_token="[UNK]",
                             sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]")  # fmt: skip
    BlipForConditionalGeneration(BlipConfig()).save_pretrained(root / "blip")
    BlipProcessor(BlipImageProcessor(), text).save_pretrained(root / "blip")
    neo = GPTNeoConfig(
        vocab_size=50257, hidden_size=768, num_layers=4, num_heads=16, window_size=256,
        attention_types=[[["global", "local"], 2]], max_position_embeddings=2048,
        bos_token_id=50256, eos_token_id=50256,
    )  # fmt: skip
    GPTNeoForCausalLM(neo).save_pretrained(root / "neo")
    gpt = word_tokenizer(50257, {50256: "<|endoftext|>"})
    PreTrainedTokenizerFast(
        tokenizer_object=gpt, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    ).save_pretrained(root / "neo")
    return str(root / "blip"), str(root / "neo")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=32, help="story length")
    parser.add_argument("--caption_tokens", type=int, default=20)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        blip, neo = save_real_size_models(Path(folder))
        captioner = Captioner(blip, max_new_tokens=args.caption_tokens)
        generator = ImageStoryGenerator(captioner, StoryWriter(neo)).to(args.device)
    millions = [sum(p.numel() for p in m.parameters()) / 1e6 for m in generator.children()]
    print(f"captioner {millions[0]:.0f}M parameters, writer {millions[1]:.0f}M; "
          f"device {args.device}, {torch.get_num_threads()} threads; {args.images} images, "
          f"captions {args.caption_tokens} tokens, stories {args.max_new_tokens} new tokens"
    )  # fmt: skip
    images = [Image.effect_noise((480, 360), 40 + i).convert("RGB") for i in range(args.images)]
    items = [ImageInput(f"noise{i}", image, None) for i, image in enumerate(images)]
    timed(generator, items[:2], args.max_new_tokens, batched=True, bf16=False)  # warm-up
    print("| precision | batched stories/min | one-by-one stories/min | speed-up | same stories |")
    print("|---|---:|---:|---:|---:|")
    for precision in args.precisions:
        bf16 = precision == "bf16"
        batch_s, batch_stories = timed(generator, items, args.max_new_tokens, True, bf16)
        single_s, single_stories = timed(generator, items, args.max_new_tokens, False, bf16)
        same = sum(a == b for a, b in zip(batch_stories, single_stories, strict=True))
        print(f"| {precision} | {60 * len(items) / batch_s:.1f} ({batch_s:.1f} s) | "
              f"{60 * len(items) / single_s:.1f} ({single_s:.1f} s) | "
              f"{single_s / batch_s:.2f}x | {same}/{len(items)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
