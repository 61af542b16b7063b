"""``python -m lab3 app``: a web page where an image goes in and its caption and story come out.

python -m lab3 app                                          # configs/lab3/story.yaml, on :7860
python -m lab3 app --config configs/lab3/story.yaml --port 8080 --examples photos/
python -m lab3 app --model.writer.model path/to/model --model.seed 3 --device cpu

It reads the ``model`` block of predict's config (captioner, writer, default length and seed; the
``trainer`` and ``data`` blocks are accepted and unused), so one file describes the models of both
commands. The models load once, at start; requests are answered one at a time. Serving on another
address than the loopback one (``--host 0.0.0.0``) lets every visitor make this machine download a
URL or read a file path of their choice: do it on trusted networks only.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from PIL import Image

from common.app import add_server_arguments, check_address, import_gradio, serve, user_error
from common.commands import command_parser
from lab3.story.generator import ImageStoryGenerator
from lab3.story.inputs import IMAGE_SUFFIXES
from lab3.story.module import StoryModule

#: the model block the app reads when no ``--config`` is given
STORY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lab3" / "story.yaml"
NO_IMAGE = "error: give an image (upload, webcam or URL)"


def example_images(folder: str | Path, count: int = 6) -> list[str]:
    """``count`` images spread evenly over the sorted images under ``folder`` (in a folder per
    class, such as Imagenette's, that is one class each); none when the folder is missing."""
    images = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [str(p) for p in images[:: max(1, len(images) // count)][:count]]


def build_app(
    generator: ImageStoryGenerator, examples: list[str], seed: int = 0, length: str = "medium"
) -> Any:
    """The page (a ``gradio.Blocks``): image or URL, length, seed and temperature in; caption,
    story and word count out. Each component has an ``elem_id``, so that a browser test finds it."""
    gr = import_gradio()
    writer = generator.writer
    presets = list(writer.lengths)
    with gr.Blocks(title="Lab 3: a story for every image") as demo:
        gr.Markdown("# Lab 3: a story for every image\nBLIP captions it, TinyStories writes on.")
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="pil", sources=["upload", "webcam", "clipboard"], elem_id="image"
                )
                url = gr.Textbox(
                    label="or an image URL or file path (used when filled)", elem_id="url"
                )
                length_choice = gr.Radio(
                    presets,
                    value=length if length in presets else presets[0],
                    label="Length",
                    elem_id="length",
                )
                with gr.Row():
                    seed_box = gr.Number(
                        seed, precision=0, label="Seed (empty: a new one)", elem_id="seed"
                    )
                    temperature = gr.Slider(
                        0.05,
                        2.0,
                        writer.temperature,
                        step=0.05,
                        label="Temperature",
                        interactive=writer.do_sample,  # greedy decoding has none
                        elem_id="temperature",
                    )
                write_button = gr.Button("Write a story", variant="primary", elem_id="write")
            with gr.Column():
                caption = gr.Textbox(label="Caption", interactive=False, elem_id="caption")
                story = gr.Textbox(label="Story", lines=12, interactive=False, elem_id="story")
                words = gr.Markdown(elem_id="words")
        if examples:
            gr.Examples([[path] for path in examples], image, label="Examples", elem_id="examples")
        write_button.click(
            partial(_write, gr, generator),
            [image, url, length_choice, seed_box, temperature],
            [caption, story, words],
        )
    return demo


def _write(
    gr: ModuleType,
    generator: ImageStoryGenerator,
    image: Image.Image | None,
    url: str,
    length: str,
    seed: int | None,
    temperature: float,
) -> tuple[str, str, str]:
    """One request: the URL or path when filled, else the image; an input error is shown in the
    page as the CLI's one line. The writer's temperature is this request's only while it runs
    (the queue runs one request at a time)."""
    source = url.strip() or image
    if source is None:
        raise gr.Error(NO_IMAGE)
    writer, default = generator.writer, generator.writer.temperature
    writer.temperature = temperature
    try:
        result = generator.generate(source, length, seed)
    except ValueError as error:  # ImageInputError (the input) or an unknown length
        raise user_error(gr, error) from None
    finally:
        writer.temperature = default
    return result.caption, result.story, f"{result.word_count} words, seed {result.seed}"


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("python -m lab3 app", __doc__)
    parser.default_config_files = [str(STORY_CONFIG)]
    parser.add_argument(
        "--model",
        type=StoryModule,
        required=True,
        sub_configs=True,
        help="captioner, writer, length, seed",
    )
    for unused in ("trainer", "data"):
        parser.add_argument(f"--{unused}", type=dict | None, default=None, help="predict's; unused")
    parser.add_argument("--seed_everything", type=bool | int, default=False, help="unused")
    parser.add_argument(
        "--device", type=str | None, default=None, help="default: cuda if available"
    )
    parser.add_argument(
        "--examples", type=str, default="data/imagenette/val", help="a folder of example images"
    )
    add_server_arguments(parser)
    cfg = parser.parse_args(argv)
    import_gradio()  # a missing Gradio, or a busy port, fails in one line,
    check_address(cfg.host, cfg.port)  # before minutes of model loading
    module = parser.instantiate_classes(cfg).model
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    generator = module.generator.to(device)
    demo = build_app(
        generator, example_images(cfg.examples), module.hparams.seed, str(module.hparams.length)
    )
    serve(demo, cfg.host, cfg.port)
