"""``python -m lab2 export``: a ``fit`` checkpoint → a Hugging Face GPT-2 folder.

``CharGPT`` has GPT-2's parameter names and shapes, so :func:`to_gpt2` copies it into a
``transformers.GPT2LMHeadModel`` of the same size; only GPT-2's ``Conv1D`` layers (the attention
and MLP projections) store their weights transposed. :func:`character_tokenizer` writes the
characters as a ``tokenizers`` tokenizer (one token per character, decoded without spaces), so
the folder needs nothing from this project::

    model = GPT2LMHeadModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = model.generate(**tokenizer("Nel mezzo", return_tensors="pt"), do_sample=True)
    print(tokenizer.decode(ids[0]))

An existing folder that holds files is left alone unless ``--overwrite``; then only the files
the export writes are replaced, each in one step, after the whole export has been written
beside them (a failure half-way changes nothing).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from common.commands import command_parser, writable_folder
from lab2.generate import load_network
from lab2.models import CharGPT

log = logging.getLogger(__name__)

#: GPT-2's layers that are ``Conv1D`` (weight ``(in, out)``), where ``nn.Linear`` has ``(out, in)``
CONV1D_WEIGHTS = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)


class ExportError(ValueError):
    """A network that GPT-2 cannot hold: the message says which and what to do."""


def gpt2_config(network: CharGPT) -> GPT2Config:
    """GPT-2's configuration of ``network``'s size (exact GELU, LayerNorm eps 1e-5, its dropout;
    no begin/end-of-text tokens: the vocabulary is the text's characters)."""
    config = network.config()
    return GPT2Config(
        vocab_size=config["vocab_size"],
        n_positions=config["context"],
        n_embd=config["width"],
        n_layer=config["layers"],
        n_head=config["heads"],
        activation_function="gelu",
        resid_pdrop=config["dropout"],
        embd_pdrop=config["dropout"],
        attn_pdrop=config["dropout"],
        layer_norm_epsilon=1e-5,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=True,
    )


def to_gpt2(network: CharGPT) -> GPT2LMHeadModel:
    """A ``GPT2LMHeadModel`` (eval mode, CPU, float32) that computes ``network``'s logits.

    Example::

        gpt2 = to_gpt2(network)
        torch.testing.assert_close(gpt2(ids).logits, network(ids))
    """
    if not isinstance(network, CharGPT):
        raise ExportError(
            f"only a CharGPT has GPT-2's layers, this checkpoint holds a {type(network).__name__}: "
            "export a checkpoint of lab2.models.CharGPT"
        )
    if not network.bias:
        raise ExportError(
            "this CharGPT has no biases (bias: false) and GPT-2's layers have them: train one "
            "with bias: true to export it"
        )
    gpt2 = GPT2LMHeadModel(gpt2_config(network))
    state = {
        key: value.t() if key.endswith(CONV1D_WEIGHTS) else value
        for key, value in network.state_dict().items()
    }
    gpt2.load_state_dict({key: value.float().cpu() for key, value in state.items()})
    return gpt2.eval()


def character_tokenizer(characters: str, context: int) -> PreTrainedTokenizerFast:
    """One token per character (id ``i``: ``characters[i]``), decoded by joining the characters:
    ``decode(encode(text)) == text`` for any text of those characters."""
    tokenizer = Tokenizer(models.WordLevel({c: i for i, c in enumerate(characters)}))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=context, clean_up_tokenization_spaces=False
    )


def export(checkpoint: str | Path, folder: str | Path, overwrite: bool = False) -> Path:
    """Write the checkpoint's network and characters as a Hugging Face folder (see above)."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise SystemExit(
            f"error: {folder} already holds files; choose another --out or replace the export's "
            "files in it with --overwrite true"
        )
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"error: --out {folder} is a file; give a folder")
    network, vocabulary = load_network(checkpoint)
    gpt2 = to_gpt2(network)
    tokenizer = character_tokenizer(vocabulary.characters, network.context)
    writable_folder(folder, "--out")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as staging:
        gpt2.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for file in sorted(Path(staging).iterdir()):
            os.replace(file, folder / file.name)
    return folder


def main(argv: list[str] | None = None) -> Path:
    parser = command_parser("python -m lab2 export", __doc__)
    parser.add_argument("--checkpoint", type=str, required=True, help="a `lab2 fit` checkpoint")
    parser.add_argument("--out", type=str, required=True, help="the Hugging Face folder to write")
    parser.add_argument(
        "--overwrite",
        type=bool,
        default=False,
        help="replace the export's files in an --out folder that already holds files",
    )
    cfg = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = export(cfg.checkpoint, cfg.out, cfg.overwrite)
    except ExportError as error:
        raise SystemExit(f"error: {error}") from None
    log.info(
        "GPT-2 → %s: GPT2LMHeadModel.from_pretrained(%r), AutoTokenizer.from_pretrained(%r)",
        folder,
        str(folder),
        str(folder),
    )
    return folder
