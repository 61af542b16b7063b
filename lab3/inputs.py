"""Images for the story generator: files, folders and http(s) URLs, read safely.

Every failure is an :class:`ImageInputError` whose message names the input in one line, so a
batch can report it next to the image it belongs to and go on with the others.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

#: file endings taken from a folder (a file named explicitly is always tried)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


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
    """The body of an image URL; refuses non-image content types and bodies over ``max_bytes``."""
    request = urllib.request.Request(url, headers={"User-Agent": "dla-labs-lab3"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get_content_type()
            if not content_type.startswith("image/"):
                raise ImageInputError(url, f"not an image (content type {content_type})")
            length = response.headers.get("Content-Length")
            if length is not None and int(length) > max_bytes:
                raise ImageInputError(url, f"too large ({int(length)} bytes > {max_bytes})")
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        raise ImageInputError(url, f"download failed (HTTP {error.code} {error.reason})") from None
    except TimeoutError:
        raise ImageInputError(url, f"download timed out after {timeout:g} s") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            raise ImageInputError(url, f"download timed out after {timeout:g} s") from None
        raise ImageInputError(url, f"download failed ({reason})") from None
    if len(body) > max_bytes:
        raise ImageInputError(url, f"too large (more than {max_bytes} bytes)")
    return body


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
