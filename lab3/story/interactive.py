"""``python -m lab3 interactive``: ask for an image and a length, print caption and story, repeat.

python -m lab3 interactive                                   # BLIP base + TinyStories-33M
python -m lab3 interactive --writer.model path/to/model --seed 0
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from common.commands import command_parser
from lab3.story.captioner import Captioner
from lab3.story.generator import ImageStoryGenerator
from lab3.story.writer import StoryWriter

QUIT = {"", "q", "quit", "exit"}


def session(
    generator: ImageStoryGenerator,
    seed: int | None = None,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
) -> int:
    """The question loop (``ask``/``say`` are the terminal unless a test passes others);
    returns the number of stories told. Ends on an empty answer, ``q``, or end of input."""
    presets = "/".join(generator.writer.lengths)
    told = 0
    while True:
        try:
            source = ask("Image path or URL (empty or q to quit): ").strip()
            if source.lower() in QUIT:
                return told
            length = ask(f"Length ({presets} or a token count) [medium]: ").strip() or "medium"
        except EOFError:
            return told
        try:
            result = generator.generate(source, int(length) if length.isdigit() else length, seed)
        except ValueError as error:  # ImageInputError (the input) or an unknown length
            say(f"error: {error}")
            continue
        say(f"\nCaption: {result.caption}\n\n{result.story}\n")
        say(f"({result.word_count} words, seed {result.seed})\n")
        told += 1


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("python -m lab3 interactive", __doc__)
    parser.add_class_arguments(Captioner, "captioner")
    parser.add_class_arguments(StoryWriter, "writer")
    parser.add_argument(
        "--seed", type=int | None, default=None, help="default: a new one each time"
    )
    parser.add_argument(
        "--device", type=str | None, default=None, help="default: cuda if available"
    )
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    session(ImageStoryGenerator(cfg.captioner, cfg.writer).to(device), cfg.seed)
