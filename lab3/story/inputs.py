"""Images for the story generator: files, folders and http(s) URLs, read safely.

Every failure is an :class:`ImageInputError` whose message names the input in one line, so a
batch can report it next to the image it belongs to and go on with the others.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from PIL import Image, ImageOps, UnidentifiedImageError

#: file endings taken from a folder (a file named explicitly is always tried)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
#: bytes asked of the socket at a time while a download streams in
DOWNLOAD_CHUNK = 65_536

Result = TypeVar("Result")


class ImageInput(NamedTuple):
    """One source, read: its image, or why it could not be read (a batch keeps both kinds)."""

    source: str
    image: Image.Image | None
    error: str | None


class ImageInputError(ValueError):
    """An input that is not a readable image: the message names the input and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[str]:
    """Paths, folders (their image files, sorted) and URLs → one flat list of sources.

    Paths that do not exist are kept, so that they fail later with their own error, in place.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    expanded = []
    for source in map(str, sources):
        if not is_url(source) and Path(source).is_dir():
            files = sorted(Path(source).rglob("*"))
            images = [str(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            expanded += images or [source]  # an empty folder fails later, by name
        else:
            expanded.append(source)
    return expanded


def download(url: str, timeout: float = 10.0, max_bytes: int = 20_000_000) -> bytes:
    """The body of an image URL, within ``timeout`` seconds in all: name lookup, connection,
    headers and body together (a socket's timeout bounds each read only, so a server that sends a
    byte every few seconds would hold it for ever). Refuses non-image content types and bodies over
    ``max_bytes``, counted while they stream in (a missing or false Content-Length changes nothing).

    The transfer runs in a daemon thread that the caller stops waiting for at the deadline: a hung
    name lookup or server can neither hold the caller nor keep the process from exiting.
    """
    deadline = time.monotonic() + timeout
    transfer = _DaemonCall(_transfer, url, timeout, max_bytes, deadline)
    if not transfer.wait(timeout):
        raise _timed_out(url, timeout)
    return transfer.result()


def _transfer(url: str, timeout: float, max_bytes: int, deadline: float) -> bytes:
    """:func:`download`'s work; gives up at ``deadline`` too, so that an abandoned transfer ends at
    the server's next byte (or after ``timeout`` seconds of silence) instead of going on."""
    request = urllib.request.Request(url, headers={"User-Agent": "dla-labs-lab3"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get_content_type()
            if not content_type.startswith("image/"):
                raise ImageInputError(url, f"not an image (content type {content_type})")
            length = response.headers.get("Content-Length")
            if length is not None and int(length) > max_bytes:
                raise ImageInputError(url, f"too large ({int(length)} bytes > {max_bytes})")
            body = bytearray()
            while chunk := response.read1(DOWNLOAD_CHUNK):  # returns what has arrived
                body += chunk
                if len(body) > max_bytes:
                    raise ImageInputError(url, f"too large (more than {max_bytes} bytes)")
                if time.monotonic() > deadline:
                    raise _timed_out(url, timeout)
    except urllib.error.HTTPError as error:
        raise ImageInputError(url, f"download failed (HTTP {error.code} {error.reason})") from None
    except TimeoutError:
        raise _timed_out(url, timeout) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise _timed_out(url, timeout) from None
        raise ImageInputError(url, f"download failed ({error.reason})") from None
    except (OSError, http.client.HTTPException) as error:  # e.g. the connection reset midway
        raise ImageInputError(url, f"download failed ({error})") from None
    return bytes(body)


def _timed_out(url: str, timeout: float) -> ImageInputError:
    return ImageInputError(url, f"download timed out after {timeout:g} s")


def load_image(
    source: str | Path, timeout: float = 10.0, max_bytes: int = 20_000_000
) -> Image.Image:
    """Decode ``source`` fully (so a truncated file fails here), upright by EXIF, in RGB."""
    source = str(source)
    if is_url(source):
        stream = io.BytesIO(download(source, timeout, max_bytes))
    elif not Path(source).exists():
        raise ImageInputError(source, "no such file or folder")
    elif Path(source).is_dir():
        raise ImageInputError(source, "a folder with no image files")
    else:
        stream = source
    try:
        with Image.open(stream) as image:
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except UnidentifiedImageError:
        raise ImageInputError(source, "not an image file (cannot identify its format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(source, f"truncated or damaged image ({error})") from None


def read_input(source: str, timeout: float = 10.0, max_bytes: int = 20_000_000) -> ImageInput:
    """:func:`load_image` that records the error instead of raising it (for batches)."""
    try:
        return ImageInput(source, load_image(source, timeout, max_bytes), None)
    except ImageInputError as error:
        return ImageInput(source, None, str(error))


def read_inputs(
    sources: list[str], timeout: float = 10.0, max_bytes: int = 20_000_000
) -> list[ImageInput]:
    """:func:`read_input` of every source at once (a thread each: a batch is small), in order: a
    batch of slow URLs costs one ``timeout``, not one each."""
    reads = [_DaemonCall(read_input, source, timeout, max_bytes) for source in sources]
    return [read.result() for read in reads]


class _DaemonCall(Generic[Result]):
    """``function(*args)`` started in a daemon thread, which cannot keep the process from exiting
    (as a ``ThreadPoolExecutor``'s workers would, until a hung download ends)."""

    def __init__(self, function: Callable[..., Result], *args: Any) -> None:
        self._outcome: list[Result | BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[..., Result], *args: Any) -> None:
        try:
            self._outcome.append(function(*args))
        except BaseException as error:  # raised in the caller's thread, by `result`
            self._outcome.append(error)

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the call has ended, after waiting for it at most ``timeout`` seconds."""
        self._thread.join(timeout)
        return bool(self._outcome)

    def result(self) -> Result:
        """Its return value, or its exception raised here (waits for it to end)."""
        self.wait()
        if isinstance(self._outcome[0], BaseException):
            raise self._outcome[0]
        return self._outcome[0]
