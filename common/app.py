"""What the labs' web apps share: Gradio (an optional extra), the server options, the launch.

A lab's ``app`` command builds a ``gradio.Blocks`` from the same functions its CLI uses and hands
it to :func:`serve`. Gradio is imported only here and only when an app starts, so the rest of the
project runs without it::

    gr = import_gradio()              # one-line error with the install command if missing
    check_address(host, port)         # a busy port or a foreign address: one line, at once
    with gr.Blocks(title="...") as demo:
        ...
    serve(demo, host="127.0.0.1", port=7860)
"""

from __future__ import annotations

import os
import socket
from types import ModuleType
from typing import Any

from jsonargparse import ArgumentParser
from jsonargparse.typing import restricted_number_type

#: what to run when Gradio is missing (the ``app`` extra of pyproject.toml; ``dev`` includes it)
INSTALL_HINT = "pip install -e '.[app]'"
#: a TCP port a server can be asked to listen on (0, "any free port", would hide the address)
Port = restricted_number_type("Port", int, [(">=", 1), ("<=", 65535)])


def import_gradio() -> ModuleType:
    """The ``gradio`` module, or one line that says how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    try:
        import gradio
    except ImportError:
        raise SystemExit(f"error: the web apps need Gradio: {INSTALL_HINT}") from None
    return gradio


def add_server_arguments(parser: ArgumentParser) -> None:
    """``--host`` (loopback by default: nothing is exposed unless asked) and ``--port``."""
    parser.add_argument(
        "--host", type=str, default="127.0.0.1", help="address to serve on (0.0.0.0: every one)"
    )
    parser.add_argument("--port", type=Port, default=7860, help="TCP port of the app (1-65535)")


def check_address(host: str, port: int) -> None:
    """Fail in one line if ``host:port`` cannot be served (a port another program listens on,
    an address that is not this machine's); an app calls it before loading its models, since
    Gradio finds out only at launch. Binds as Gradio does (``SO_REUSEADDR``), so a port its
    last run left in TIME_WAIT passes."""
    port = int(port)  # a plain int: the socket module refuses jsonargparse's Port
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SystemExit(
            f"error: cannot serve on {host}:{port} ({reason}); choose another --port (or --host)"
        ) from None


def user_error(gr: ModuleType, error: BaseException) -> Exception:
    """The one-line message the CLI would print for ``error``, as an error shown in the page
    (``raise user_error(gr, error) from None`` in an event handler: the app keeps serving)."""
    message = " ".join(str(error).split()) or type(error).__name__
    return gr.Error(message if message.startswith("error:") else f"error: {message}")


def serve(demo: Any, host: str, port: int, block: bool = True) -> Any:
    """Launch ``demo`` on ``host:port`` (no public share link, no analytics); ``block=False``
    returns at once (tests), else it serves until interrupted."""
    demo.queue(default_concurrency_limit=1)  # one model, one request at a time
    demo.launch(
        server_name=host,
        server_port=int(port),  # a plain int (jsonargparse's Port is a subclass)
        share=False,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=not block,
    )
    return demo
