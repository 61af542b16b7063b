"""``python -m lab3 app`` in a real browser: the page gives the story the Python API gives, shows
the CLI's one-line errors and keeps serving after them (tiny models, headless Chromium)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from common.app import INSTALL_HINT, serve
from common.cli import main
from lab3.story.app import NO_IMAGE, build_app, example_images
from lab3.story.inputs import ImageInputError
from tests.browser import browser, free_port, page  # noqa: F401
from tests.conftest import REPO
from tests.test_lab3 import LENGTHS, PROMPT, generator, tiny_models  # noqa: F401

#: set (to anything) to write docs/lab3_app.png, the picture of the app in the docs
SCREENSHOTS = os.environ.get("DLA_SCREENSHOTS")


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> list[str]:
    """Three example images, one per class folder, as ``example_images`` picks them."""
    root = tmp_path_factory.mktemp("examples")
    gradient = Image.radial_gradient("L").resize((96, 96))
    for name, color in [("bears", "sienna"), ("boats", "steelblue"), ("fields", "olivedrab")]:
        (root / name).mkdir()
        plain = Image.new("RGB", (96, 96), color)
        Image.composite(Image.new("RGB", (96, 96), "white"), plain, gradient).save(
            root / name / "0.png"
        )
        plain.save(root / name / "1.png")
    return example_images(root, count=3)


@pytest.fixture(scope="module")
def app(generator, examples) -> Iterator[str]:  # noqa: F811
    """The app on a free local port, for the whole module; its address."""
    port = free_port()
    demo = serve(build_app(generator, examples, seed=0), "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def open_app(page, app) -> None:  # noqa: F811
    page.goto(app)
    page.wait_for_selector("#write")


def write_story(page) -> dict[str, str]:  # noqa: F811
    """Press the button; the caption, story and word count once the story is there."""
    page.click("#write")
    page.wait_for_function("document.querySelector('#story textarea').value.length > 0")
    return {
        "caption": page.input_value("#caption textarea"),
        "story": page.input_value("#story textarea"),
        "words": page.inner_text("#words").strip(),
    }


def test_upload_gives_the_story_of_the_python_api(page, app, generator, tmp_path):  # noqa: F811
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(path)
    open_app(page, app)
    page.set_input_files("#image input[type=file]", str(path))
    page.wait_for_selector("#image img")  # uploaded
    page.get_by_label("short").check()
    page.fill("#seed input", "5")
    shown = write_story(page)
    expected = generator.generate(Image.open(path), "short", seed=5)
    assert shown == {
        "caption": expected.caption,
        "story": expected.story,
        "words": f"{expected.word_count} words, seed 5",
    }
    assert expected.story.startswith(PROMPT.format(caption=expected.caption))


def test_errors_are_the_cli_line_and_the_app_keeps_serving(page, app, generator, tmp_path):  # noqa: F811
    text_file, image = tmp_path / "notes.png", tmp_path / "noise.png"
    text_file.write_text("not an image")
    Image.effect_noise((50, 20), 80).convert("RGB").save(image)
    closed = f"http://127.0.0.1:{free_port()}/x.png"  # nothing listens there
    open_app(page, app)
    page.click("#write")
    page.get_by_text(NO_IMAGE).wait_for()
    page.set_input_files("#image input[type=file]", str(image))
    page.wait_for_selector("#image img")
    for source in (text_file, closed):  # the URL or path box wins over the uploaded image
        with pytest.raises(ImageInputError) as cli:
            generator.generate(source)
        page.fill("#url textarea", str(source))
        page.click("#write")
        page.get_by_text(f"error: {cli.value}").wait_for()
    assert page.input_value("#story textarea") == ""

    page.fill("#url textarea", str(image))
    page.fill("#temperature input[type=number]", "0.05")  # the tiny model writes alike at 0.7, 1.5
    page.press("#temperature input[type=number]", "Enter")
    default = generator.writer.temperature
    shown = write_story(page)
    assert generator.writer.temperature == default  # the request's temperature did not stay
    generator.writer.temperature = 0.05
    try:
        expected = generator.generate(image, "medium", seed=0)
    finally:
        generator.writer.temperature = default
    assert (shown["caption"], shown["story"]) == (expected.caption, expected.story)


def test_an_example_fills_the_image(page, app, generator, examples):  # noqa: F811
    open_app(page, app)
    page.locator("#examples button").nth(1).click()
    page.wait_for_selector("#image img")
    shown = write_story(page)
    assert shown["story"] == generator.generate(examples[1], "medium", seed=0).story
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / "lab3_app.png"), full_page=True)


def test_example_images_spread_over_the_folder(examples, tmp_path):
    assert [path.split("/")[-2] for path in examples] == ["bears", "boats", "fields"]
    assert example_images(tmp_path / "missing") == []


def test_main_serves_the_config_model_block(tiny_models, examples, monkeypatch):  # noqa: F811
    served = {}
    monkeypatch.setattr("lab3.story.app.serve", lambda demo, host, port: served.update(locals()))
    args = [
        f"--model.captioner.model={tiny_models['blip']}",
        f"--model.writer.model={tiny_models['neo']}",
        f"--model.writer.lengths={LENGTHS}",
        "--model.length=short",
        "--model.seed=7",
        f"--examples={Path(examples[0]).parents[1]}",
        "--port=8123",
    ]
    main("lab3", ["app", f"--config={REPO / 'configs/lab3/story.yaml'}", *args])
    components = {block.elem_id: block for block in served["demo"].blocks.values()}
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    assert (components["length"].value, components["seed"].value) == ("short", 7)
    assert "examples" in components


def test_main_without_gradio_says_how_to_install_before_loading_models(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    for module in ("lab3.story.captioner", "lab3.story.writer"):
        monkeypatch.setattr(f"{module}.load_pretrained", lambda *_, **__: pytest.fail("loaded"))
    with pytest.raises(SystemExit) as done:
        main("lab3", ["app"])
    assert INSTALL_HINT in str(done.value) and "\n" not in str(done.value)
