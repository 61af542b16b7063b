"""``StoryCLI``: ``python -m lab3 predict``, the project's LightningCLI for Lab 3.

Only ``predict`` (there is nothing to fit, validate or test) and no classifier links (Lab 3 has
no classes). After a run it prints where the stories are and how many inputs failed; when none
could be read it exits with an error.
"""

from __future__ import annotations

from common.cli import LabCLI
from lab3.report import StoryReport


class StoryCLI(LabCLI):
    link_data_to_model = False

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {"predict": LabCLI.subcommands()["predict"]}

    def after_predict(self) -> None:
        for report in (c for c in self.trainer.callbacks if isinstance(c, StoryReport)):
            if not report.stories:
                raise SystemExit(f"error: {report.summary()}")
            print(report.summary())
