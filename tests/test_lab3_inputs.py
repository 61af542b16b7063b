"""Lab 3 inputs, sentence trimming and seeded sampling: no models needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from transformers import RepetitionPenaltyLogitsProcessor

from lab3.story.data import ImageSources
from lab3.story.inputs import (
    ImageInputError,
    download,
    expand_sources,
    load_image,
    read_input,
    read_inputs,
)
from lab3.story.sampling import PaddedRepetitionPenalty, SeededGumbelNoise, sampling_processors
from lab3.story.writer import trim_to_sentence


def png_bytes(size=(12, 8), color=(200, 30, 30)) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


#: how long a trickling answer goes on: a download that waits for its end has no total deadline
TRICKLE_SECONDS = 30.0


class Handler(BaseHTTPRequestHandler):
    """/ok.png, /page.html, /big.png (announced size), /endless.png (no size), /slow.png, 404;
    /trickle.png sends its body and /trickle-headers.png its headers one byte every 0.5 s (for
    ``TRICKLE_SECONDS``), /flood.png sends 1000 bytes every 0.1 s without a size."""

    #: set when a request for a trickling answer arrives
    trickle_started = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]  # a query only makes a URL another one
        body, content_type, length = png_bytes(), "image/png", None
        if path == "/page.html":
            body, content_type = b"<html>not an image</html>", "text/html; charset=utf-8"
        elif path == "/big.png":
            length = 10_000_000
        elif path == "/endless.png":
            body = png_bytes() + b"\0" * 5000
        elif path == "/slow.png":
            time.sleep(1.5)
        elif path in ("/trickle.png", "/trickle-headers.png", "/flood.png"):
            self.stream(path)
            return
        elif path != "/ok.png":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, path: str) -> None:
        """Answers that go on for ``TRICKLE_SECONDS``, each read of them timely."""
        self.trickle_started.set()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if path == "/trickle-headers.png":
            self.wfile.write(b"X-Trickle: ")
        else:
            self.end_headers()
        piece, pause = (b"\0" * 1000, 0.1) if path == "/flood.png" else (b"a", 0.5)
        end = time.monotonic() + TRICKLE_SECONDS
        while time.monotonic() < end:  # until the client hangs up (a BrokenPipeError)
            self.wfile.write(piece)
            time.sleep(pause)

    def log_message(self, *args) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # the client hangs up on purpose (too large, timeout)


@contextmanager
def image_server() -> Iterator[str]:
    """The :class:`Handler` on 127.0.0.1 (a thread per request): its base URL."""
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server():
    with image_server() as url:
        yield url


def test_url_is_downloaded_and_decoded(server):
    image = load_image(f"{server}/ok.png", timeout=5, max_bytes=100_000)
    assert image.size == (12, 8) and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (200, 30, 30)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/page.html", "not an image (content type text/html)"),
        ("/big.png", "too large (10000000 bytes > 4000)"),
        ("/endless.png", "too large (more than 4000 bytes)"),
        ("/slow.png", "download timed out after 0.5 s"),
        ("/missing.png", "download failed (HTTP 404"),
    ],
)
def test_bad_url_fails_in_one_line_naming_it(server, path, message):
    url = f"{server}{path}"
    with pytest.raises(ImageInputError) as error:
        load_image(url, timeout=0.5, max_bytes=4000)
    assert str(error.value).startswith(f"{url}: {message}")
    assert "\n" not in str(error.value) and error.value.source == url


@pytest.mark.parametrize("path", ["/trickle.png", "/trickle-headers.png"])
def test_a_trickling_download_stops_at_its_deadline(server, path):
    """A byte every 0.5 s never trips a per-read timeout: ``timeout`` bounds the whole download."""
    url = f"{server}{path}"
    start = time.monotonic()
    with pytest.raises(ImageInputError) as error:
        download(url, timeout=1.5)
    assert time.monotonic() - start < 5  # per-read timeouts alone: until the server stops
    assert str(error.value) == f"{url}: download timed out after 1.5 s"


@pytest.mark.parametrize("reader", ["read_inputs", "DataLoader"])
def test_the_urls_of_a_batch_download_at_once(server, reader):
    """Three trickling URLs cost one deadline, not three, and every result keeps its place."""
    sources = [f"{server}/trickle.png?{n}" for n in range(3)]
    sources.insert(1, f"{server}/ok.png")
    start = time.monotonic()
    if reader == "read_inputs":
        items = read_inputs(sources, timeout=2, max_bytes=100_000)
    else:
        loader = DataLoader(ImageSources(sources, 2, 100_000), batch_size=4, collate_fn=list)
        (items,) = list(loader)
    assert time.monotonic() - start < 4.5  # one after the other: at least 6 s
    assert [item.source for item in items] == sources
    assert items[1].image is not None and items[1].error is None
    for item in (items[0], items[2], items[3]):
        assert item.image is None and item.error == f"{item.source}: download timed out after 2 s"


def test_the_size_limit_holds_while_an_endless_body_streams_in(server):
    """No Content-Length and no end: the download stops once ``max_bytes`` are passed."""
    start = time.monotonic()
    with pytest.raises(ImageInputError, match=r"flood\.png: too large \(more than 4000 bytes\)$"):
        download(f"{server}/flood.png", timeout=30, max_bytes=4000)
    assert time.monotonic() - start < 5


def test_unreachable_host_fails_naming_it():
    url = "http://127.0.0.1:9/nothing.png"  # the discard port: connection refused
    with pytest.raises(
        ImageInputError, match=r"^http://127\.0\.0\.1:9/nothing\.png: download fail"
    ):
        load_image(url, timeout=2)


def test_bad_files_fail_in_one_line_naming_them(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("these are words, not pixels")
    truncated = tmp_path / "half.jpg"
    buffer = BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "JPEG")
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "nope.jpg": "no such file or folder",
        text: "not an image file",
        truncated: "truncated or damaged image",
        tmp_path / "empty": "a folder with no image files",
    }
    for path, message in cases.items():
        with pytest.raises(ImageInputError) as error:
            load_image(path)
        assert str(error.value).startswith(f"{path}: {message}")
        assert "\n" not in str(error.value)
        assert read_input(str(path)) == (str(path), None, str(error.value))


def test_exif_orientation_and_rgb(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.new("RGB", (40, 20)).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (20, 40)
    for mode in ("L", "P", "RGBA", "CMYK"):
        Image.new(mode, (5, 5)).save(tmp_path / f"{mode}.tiff")
        assert load_image(tmp_path / f"{mode}.tiff").mode == "RGB"


def test_folders_expand_to_their_images_in_order(tmp_path):
    for name in ("b.png", "a.JPG", "sub/c.webp", "notes.txt"):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    sources = expand_sources([tmp_path / "photos", "https://x.org/i.jpg", "missing.png"])
    assert sources == [
        *(str(tmp_path / "photos" / n) for n in ("a.JPG", "b.png", "sub/c.webp")),
        "https://x.org/i.jpg",
        "missing.png",
    ]
    assert expand_sources(str(tmp_path / "empty")) == [str(tmp_path / "empty")]


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        ("One day, Tom ran. He fell and", "One day, Tom ran."),
        ('She said "Hi!" and then she', 'She said "Hi!"'),
        ("Is it? Yes! It is.  The end came and", "Is it? Yes! It is."),
        ("They found 3.5 apples and", "They found 3.5 apples and"),  # no sentence ends here
        ("The end.\n\nA new", "The end."),
    ],
)
def test_trim_to_the_last_complete_sentence(text, trimmed):
    assert trim_to_sentence(text) == trimmed


def test_gumbel_argmax_samples_the_softmax():
    probabilities = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 4000
    scores = probabilities.log().expand(rows, -1)
    draws = SeededGumbelNoise(list(range(rows)))(None, scores).argmax(dim=1)
    frequencies = torch.bincount(draws, minlength=4) / rows
    assert torch.allclose(frequencies, probabilities, atol=0.03)


def test_each_row_draws_from_its_own_seed():
    scores = torch.zeros(3, 50)
    together = SeededGumbelNoise([7, 1, 7])(None, scores)
    alone = SeededGumbelNoise([1])(None, scores[:1])
    assert torch.equal(together[0], together[2]) and torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    with pytest.raises(ValueError, match="2 seeds for a batch of 3"):
        SeededGumbelNoise([1, 2])(None, scores)


def test_top_p_removes_the_tail_before_sampling():
    scores = torch.tensor([[4.0, 3.0, -4.0, -5.0]]).expand(500, -1)
    processors = sampling_processors(temperature=1.0, top_p=0.9, seeds=list(range(500)))
    draws = processors(torch.zeros(500, 1, dtype=torch.long), scores.clone()).argmax(dim=1)
    assert set(draws.tolist()) == {0, 1}


def test_repetition_penalty_skips_the_padding_only():
    scores = torch.tensor([[2.0, -1.0, 0.5, 3.0]]).repeat(2, 1)
    ids = torch.tensor([[3, 3, 0, 1], [3, 0, 1, 0]])  # row 0: two pad positions (token 3)
    out = PaddedRepetitionPenalty(2.0, torch.tensor([2, 0]))(ids, scores)
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0], [1.0, -2.0, 0.5, 1.5]]
    unpadded = RepetitionPenaltyLogitsProcessor(2.0)(ids[1:], scores[1:].clone())
    assert torch.equal(out[1:], unpadded)  # transformers' own penalty where there is no padding
