"""``python -m lab2 generate``: text sampled from a ``fit`` checkpoint, on stdout and in a file.

The checkpoint alone rebuilds the network (its ``network`` entry: class path and arguments) and
the characters (its ``vocabulary``), so no config or data is needed. The prompt's last
``context`` characters are what the model sees first (a longer prompt is fine); after that,
:func:`lab2.sampling.generate` samples one character per step with a KV cache.

The text goes to stdout and to ``--out`` (default ``<run>/samples/generate_seed<S>.txt``, the
run folder being the one that holds the checkpoint's ``checkpoints/`` folder). An existing file
is never replaced: a file that already holds this very text is left as it is, and a different
text goes to the first free name ``<stem>_2.txt``, ``<stem>_3.txt``, ... (the path is logged).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch import nn

from common.checkpoints import CheckpointError, check_network, network_state, read_checkpoint
from common.commands import command_parser, writable_folder, write_text_atomic
from lab2.data import TextError, Vocabulary
from lab2.module import DANTE_PROMPT
from lab2.sampling import SamplingError, sample_texts, warpers

log = logging.getLogger(__name__)


def load_network(path: str | Path) -> tuple[nn.Module, Vocabulary]:
    """The network of a Lab 2 ``fit`` checkpoint (weights loaded, eval mode, on the CPU) and its
    vocabulary; :class:`CheckpointError` for a file that is not one (e.g. a Lab 1 checkpoint)."""
    checkpoint = read_checkpoint(path)
    spec = checkpoint.get("network")
    characters = (checkpoint.get("hyper_parameters") or {}).get("vocabulary")
    if not isinstance(spec, dict) or not isinstance(characters, str):
        raise CheckpointError(
            f"{path} is not a Lab 2 checkpoint (it has no network description or vocabulary); "
            "pass a checkpoint written by `python -m lab2 fit`"
        )
    network_class = _network_class(spec.get("class_path", ""), path)
    network = network_class(**spec.get("init_args", {}))
    state = network_state(checkpoint)
    check_network(network, {key: value.shape for key, value in state.items()}, path)
    network.load_state_dict(state)
    return network.eval(), Vocabulary(characters)


def _network_class(class_path: str, path: str | Path) -> type[nn.Module]:
    # the class is checked before it is called: a checkpoint names only an nn.Module to build
    module_name, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        found = None
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise CheckpointError(
            f"checkpoint {path} names a network {class_path!r} that is no nn.Module class "
            "importable here; install the code it was trained with"
        )
    return found


def default_output(checkpoint: str | Path, seed: int) -> Path:
    """``<run>/samples/generate_seed<S>.txt`` for ``<run>/checkpoints/<name>.ckpt`` (beside the
    checkpoint for a file kept elsewhere)."""
    folder = Path(checkpoint).resolve().parent
    run = folder.parent if folder.name == "checkpoints" else folder
    return run / "samples" / f"generate_seed{seed}.txt"


def free_path(path: Path, text: str) -> Path:
    """``path`` unless it holds another text: then the first free ``<stem>_<n><suffix>``."""
    candidate, number = path, 1
    while candidate.exists() and candidate.read_bytes() != text.encode():
        number += 1
        candidate = path.with_name(f"{path.stem}_{number}{path.suffix}")
    return candidate


def main(argv: list[str] | None = None) -> list[str]:
    parser = command_parser("python -m lab2 generate", __doc__)
    parser.add_argument("--checkpoint", type=str, required=True, help="a `lab2 fit` checkpoint")
    parser.add_argument(
        "--prompt",
        type=str,
        default=DANTE_PROMPT,
        help="the text to continue (its characters must be in the model's vocabulary; only its "
        "last `context` characters are seen)",
    )
    parser.add_argument("--length", type=NonNegativeInt, default=500, help="new characters")
    parser.add_argument("--temperature", type=float, default=0.8, help="> 0; lower: safer text")
    parser.add_argument("--top_k", type=int | None, default=None, help="keep the k likeliest")
    parser.add_argument("--top_p", type=float | None, default=None, help="nucleus, in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="the same seed, the same text")
    parser.add_argument("--num_samples", type=PositiveInt, default=1, help="texts drawn at once")
    parser.add_argument("--device", type=str | None, default=None, help="default: cuda if any")
    parser.add_argument(
        "--out",
        type=str | None,
        default=None,
        help="the text file (default: <run>/samples/generate_seed<S>.txt); an existing file is "
        "never replaced: another text goes to <stem>_2.txt, <stem>_3.txt, ...",
    )
    cfg = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = {"temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p}
    try:
        warpers(**settings)  # bad settings fail before the checkpoint is read
        network, vocabulary = load_network(cfg.checkpoint)
        path = Path(cfg.out) if cfg.out else default_output(cfg.checkpoint, cfg.seed)
        writable_folder(path.parent, "--out")  # before the work, not after
        device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        texts = sample_texts(
            network,
            vocabulary,
            cfg.prompt,
            cfg.length,
            cfg.seed,
            cfg.num_samples,
            device,
            **settings,
        )
    except (SamplingError, TextError) as error:
        raise SystemExit(f"error: {error}") from None
    if len(texts) == 1:
        output = texts[0] + "\n"
    else:
        output = "".join(f"=== sample {i} ===\n{text}\n" for i, text in enumerate(texts, 1))
    print(output, end="")
    path = write_text_atomic(free_path(path, output), output)
    log.info("%d sample(s) of %d characters → %s", len(texts), cfg.length, path)
    return texts
