"""Loading a Hugging Face model, processor or tokenizer that may not be downloadable.

``from_pretrained`` on a machine without the hub retries for minutes and then fails with
``[Errno -2] Name or service not known``, naming neither the model nor the remedy.
:func:`load_pretrained` tries the local cache first, fails at once under ``HF_HUB_OFFLINE=1``,
checks within seconds that the hub answers before downloading, and otherwise raises
:class:`ModelNotAvailableError` with one line that names the model and what to do.

    load_pretrained(AutoTokenizer.from_pretrained, "roneneldan/TinyStories-33M", "writer.tokenizer")
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from huggingface_hub import constants
from huggingface_hub.utils import get_session

log = logging.getLogger(__name__)
Loaded = TypeVar("Loaded")

#: seconds the hub has to answer before it is taken as unreachable
HUB_TIMEOUT = 5.0


class ModelNotAvailableError(FileNotFoundError):
    """A model that is neither a local folder, nor in the cache, nor downloadable now; the message
    is one line naming the model and how to get it."""


def load_pretrained(loader: Callable[..., Loaded], name: str, argument: str, **kwargs) -> Loaded:
    """``loader(name, **kwargs)`` (a ``from_pretrained``) from a folder, the cache or the hub.

    Args:
        loader: e.g. ``AutoTokenizer.from_pretrained``.
        name: a local folder or a hub name (``"org/model"``).
        argument: ``part.argument`` that names it (``"captioner.model"``), for the error's
            advice: ``--model.init_args.captioner.init_args.model`` in ``predict``,
            ``--captioner.model`` in ``interactive``.
        kwargs: passed to ``loader``.

    Raises:
        ModelNotAvailableError: a folder that does not exist, or a hub name that is not cached
            while the hub is unreachable (at once with ``HF_HUB_OFFLINE=1``).
    """
    if Path(name).expanduser().exists():
        return loader(str(Path(name).expanduser()), **kwargs)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotAvailableError(f"model folder {name!r} does not exist ({argument})")
    try:
        return loader(name, local_files_only=True, **kwargs)
    except OSError:  # transformers' "couldn't find them in the cached files"
        pass
    part, key = argument.split(".")
    remedy = (
        "run once online to cache it (or set HF_HOME to a cache that has it), or pass a local "
        f"folder (--model.init_args.{part}.init_args.{key} PATH; interactive: --{argument} PATH)"
    )
    if _offline():
        raise ModelNotAvailableError(
            f"model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {remedy}"
        )
    problem = _hub_problem(HUB_TIMEOUT)
    if problem:
        log.info("the hub cannot be reached: %s", problem)
        raise ModelNotAvailableError(
            f"model {name!r} is not in the Hugging Face cache and the hub cannot be reached: "
            f"{remedy}; HF_HUB_OFFLINE=1 skips the network"
        )
    try:
        return loader(name, **kwargs)
    except OSError as error:  # e.g. no such repository, or a private one
        raise ModelNotAvailableError(f"model {name!r} cannot be loaded: {_line(error)}") from None


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``), also when set after the import."""
    values = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (value or "").upper() in {"1", "ON", "YES", "TRUE"} for value in values
    )


def _hub_problem(timeout: float) -> str | None:
    """Why ``constants.ENDPOINT`` does not answer within ``timeout`` seconds, or ``None`` when it
    does (any HTTP status counts as an answer). Runs in a thread: name resolution is not bound by
    the request's timeout."""
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            get_session().head(constants.ENDPOINT, timeout=timeout)
            outcome.append(None)
        except Exception as error:  # httpx's, the OS's: all mean "not reachable now"
            outcome.append(_line(error))

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout + 1)
    if not outcome:
        return f"{constants.ENDPOINT} did not answer within {timeout:g} s"
    return outcome[0] and f"{constants.ENDPOINT}: {outcome[0]}"


def _line(error: BaseException) -> str:
    """The first line of an error's message (its type when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
