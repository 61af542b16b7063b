"""``Lab3CLI``: ``python -m lab3 fit|validate|test|predict``, the project's LightningCLI for Lab 3.

Both editions share it: ``fit``, ``validate`` and ``test`` train and play the RL agents
(``configs/lab3/rl/``), ``predict`` writes stories (``configs/lab3/story.yaml``). No classifier
links (Lab 3 has no classes). After ``predict`` it prints where the stories are and how many
inputs failed; when none could be read it exits with an error. SIGTERM stops it (Lightning's own
handler only notes the signal, for the training loops to stop at the end of a batch; its predict
loop never looks).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from lightning.pytorch.utilities.exceptions import SIGTERMException

from common.cli import LabCLI
from lab3.story.report import StoryReport


class Lab3CLI(LabCLI):
    link_data_to_model = False

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: LabCLI.subcommands()[name] for name in ("fit", "validate", "test", "predict")}

    def predict(self, **kwargs) -> None:
        """``trainer.predict`` that SIGTERM ends (LightningCLI calls this method if it exists)."""
        with _sigterm_raises():
            self.trainer.predict(**kwargs)

    def after_predict(self) -> None:
        for report in (c for c in self.trainer.callbacks if isinstance(c, StoryReport)):
            if not report.stories:
                raise SystemExit(f"error: {report.summary()}")
            print(report.summary())


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`SIGTERMException` (a ``SystemExit``) wherever the main thread
    is, a wait for a download included; Lightning's handler calls this one after its own."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SIGTERMException("interrupted by SIGTERM (stories.jsonl keeps the finished batches)")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
