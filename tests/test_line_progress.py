"""Progress as whole lines when stdout is a file or a pipe (a log, CI, nohup)."""

from __future__ import annotations

import re
import sys

import pytest
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from common.callbacks import LineProgress
from common.callbacks.line_progress import format_duration
from common.trainer import LabTrainer
from tests.test_threads import TinyModule, lab_trainer, loader


def trainer(tmp_path, **kwargs) -> LabTrainer:
    """A tiny LabTrainer whose progress bar is the default one."""
    return lab_trainer(tmp_path, **{"enable_progress_bar": None, **kwargs})


def bars(trainer: LabTrainer) -> list[type]:
    return [type(c) for c in trainer.callbacks if isinstance(c, ProgressBar)]


def test_lines_when_piped_and_lightnings_bar_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert bars(trainer(tmp_path)) == [LineProgress]
    assert bars(trainer(tmp_path, enable_progress_bar=False)) == []
    chosen = LineProgress(every_seconds=5)
    assert bars(trainer(tmp_path, callbacks=[chosen])) == [LineProgress]  # the user's, only
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert bars(trainer(tmp_path)) == [RichProgressBar]  # Lightning's default (rich installed)


def test_one_line_per_epoch_with_step_metrics_and_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    trainer(tmp_path).fit(TinyModule(), loader(), loader())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2
    # each epoch's line holds that epoch's own metrics, also those logged at its very end
    pattern = r"epoch {0}/2 · step {1} · val/loss \d\.\d{{4}} · train/epochs_done {0}\.0000 · \d+s"
    assert re.fullmatch(pattern.format(1, 4), lines[0]), lines[0]
    assert re.fullmatch(pattern.format(2, 8), lines[1]), lines[1]


def test_a_line_every_n_seconds_inside_epochs_and_evaluations(tmp_path, capsys):
    bar = LineProgress(every_seconds=0)
    fit = trainer(tmp_path, callbacks=[bar], max_epochs=1)
    module = TinyModule()
    fit.fit(module, loader(), loader())
    fit.validate(module, loader())
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1 · batch 3/4 · step 3 · \d+s$", out, re.M), out
    assert re.search(r"^validation · batch 2/4 · \d+s$", out, re.M), out
    assert re.search(r"^validation done · \d+s$", out, re.M), out
    assert "sanity" not in out


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.4, "0s"), (75.2, "1m 15s"), (3725, "1h 02m 05s")]
)
def test_durations_read_as_hours_minutes_seconds(seconds, shown):
    assert format_duration(seconds) == shown
