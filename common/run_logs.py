"""Reading a run folder's logs (``trainer.default_root_dir``): one training, however often it was
interrupted and resumed.

Each ``fit`` or ``test`` session writes a ``version_*`` folder (``config.yaml`` and the CSV
logger's ``metrics.csv``). A resumed fit (``--ckpt_path=last``) continues the epochs of the
session before it in a new folder, so a training's curves and wall time are spread over several
folders; these functions put them together. Used by the sweep tables and the Lab 4 report.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import yaml

from common.checkpoints import read_checkpoint


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def fit_sessions(run_dir: Path) -> list[Path]:
    """The ``version_*`` folders of the training in ``run_dir``, oldest first: the newest session
    that started afresh (``ckpt_path: null`` in its config) and the sessions that resumed it.
    A session is a fit when its ``metrics.csv`` has ``train/`` columns (a test run has none)."""
    sessions: list[Path] = []
    configs = sorted(run_dir.glob("version_*/config.yaml"), key=lambda p: p.stat().st_mtime)
    for config in configs:
        metrics = config.with_name("metrics.csv")
        if metrics.is_file() and "train/" in metrics.open().readline():
            fresh = (yaml.safe_load(config.read_text()) or {}).get("ckpt_path") is None
            sessions = [config.parent] if fresh else [*sessions, config.parent]
    return sessions


def metric_by_epoch(run_dir: Path, column: str) -> list[tuple[int, float]]:
    """``column`` per epoch of the training in ``run_dir``, over its sessions; where a resumed
    session logged an epoch again, its value wins."""
    by_epoch: dict[int, float] = {}
    for session in fit_sessions(run_dir):
        for row in read_csv(session / "metrics.csv"):
            if row.get(column) and row.get("epoch"):
                by_epoch[int(row["epoch"])] = float(row[column])
    return sorted(by_epoch.items())


def last_in(rows: list[dict[str, str]], column: str) -> float | None:
    """The last value of ``column`` in ``rows``, ``None`` if none has one."""
    values = [float(row[column]) for row in rows if row.get(column)]
    return values[-1] if values else None


def last_value(run_dir: Path, column: str) -> float | None:
    """The last ``column`` logged by the training in ``run_dir`` (with or without an epoch, e.g.
    ``trainable_params``, logged once as it starts), ``None`` if it never was."""
    rows = [row for s in fit_sessions(run_dir) for row in read_csv(s / "metrics.csv")]
    return last_in(rows, column)


def newest_rows(run_dir: Path, column: str) -> list[dict[str, str]]:
    """Rows of the newest ``version_*/metrics.csv`` under ``run_dir`` that has ``column``
    (e.g. ``test/acc``: the newest test session)."""
    for path in sorted(run_dir.glob("version_*/metrics.csv"), key=os.path.getmtime, reverse=True):
        rows = read_csv(path)
        if rows and column in rows[0]:
            return rows
    return []


def fit_seconds(run_dir: Path) -> tuple[float, bool] | None:
    """The training wall time of the fit in ``run_dir``: ``(seconds, exact)``, ``None`` if the
    folder holds no fit.

    Exact where the fit had Lightning's ``Timer`` callback (``--trainer.callbacks+=Timer
    --trainer.callbacks.interval=epoch``; without an interval the CLI cannot write the default,
    an enum, into config.yaml): its ``time_elapsed["train"]`` in ``checkpoints/last.ckpt``
    (resumed sessions included).
    Otherwise approximate, from file times: each of :func:`fit_sessions` lasts from its
    ``config.yaml`` (written once the data are loaded, as training starts) to the last write of
    its ``metrics.csv`` (its end); their durations are summed, so the pauses between sessions do
    not count while validation and the per-epoch monitors do.
    """
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        callbacks = read_checkpoint(last).get("callbacks", {})
        timer = next((s for k, s in callbacks.items() if k.startswith("Timer")), None)
        if timer is not None:
            return float(timer["time_elapsed"]["train"]), True
    durations = [
        (s / "metrics.csv").stat().st_mtime - (s / "config.yaml").stat().st_mtime
        for s in fit_sessions(run_dir)
    ]
    return (sum(durations), False) if durations else None
