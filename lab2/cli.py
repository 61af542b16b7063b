"""``LanguageCLI``: ``python -m lab2 fit|validate|test``, the project's LightningCLI for Lab 2.

The text's characters (``data.vocabulary``) become the model's ``vocabulary`` (there are no
classes to link), and ``best.ckpt`` is the lowest validation loss.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningArgumentParser

from common.cli import LabCLI


class LanguageCLI(LabCLI):
    link_data_to_model = False

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: keys for name, keys in LabCLI.subcommands().items() if name != "predict"}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.set_defaults({"checkpoint.monitor": "val/loss", "checkpoint.mode": "min"})
        parser.link_arguments(
            "data.vocabulary", "model.init_args.vocabulary", apply_on="instantiate"
        )
