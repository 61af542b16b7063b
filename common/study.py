"""A sweep's runs as the trials of one Optuna study, shared by any number of worker processes.

The study lives in a database: by default a SQLite file in the sweep's folder, or any URL
SQLAlchemy knows (PostgreSQL for several machines). A grid's cells are queued as WAITING trials
that a worker claims with the storage's compare-and-set (the way Optuna pops its own queue), so a
cell runs once however many workers share the study; a search's trials come from a sampler (TPE)
within a budget, and a search with a pruner stops its bad trials early (from inside each trial's
``fit``: :class:`common.callbacks.OptunaPruning`). A worker records a heartbeat while it runs a
trial: the trial of a worker that died goes stale, and Optuna's
:class:`RetryHeartbeatStaleTrialCallback` queues it again for the next worker that runs out of
work. Optuna's ``GridSampler`` is not used: once its grid is exhausted it hands out a point that
is still running, which would run a cell twice.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import optuna
from optuna.exceptions import (
    ExperimentalWarning,
    StorageInternalError,
    UpdateFinishedTrialError,
)
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from common.search import Search

#: what a worker takes: a trial's number and ``run(worker)`` → its result (``run_one``'s)
Taken = tuple[int, Callable[[int], dict]]
#: the status of a run that Ctrl-C interrupted: its trial is queued again, not failed
INTERRUPTED = "interrupted"
#: the states of a trial that stands for its cell (a FAILed one is retried by a new sweep)
PENDING_OR_DONE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
#: which trial of a cell speaks for it in the table: finished, then running, waiting, failed
_PRECEDENCE = {TrialState.COMPLETE: 0, TrialState.RUNNING: 1, TrialState.WAITING: 2}
#: how a search trial's ``fit`` process finds its trial: the study's URL, its name, the number
TRIAL_ENV = ("DLA_OPTUNA_STORAGE", "DLA_OPTUNA_STUDY", "DLA_OPTUNA_TRIAL")


def cell_key(attrs: dict[str, Any]) -> str:
    """A grid cell's identity: its row, its value and the exact arguments of its run (a cell
    whose arguments changed is a new cell, as a run folder's result.json is reused only for the
    same arguments)."""
    return json.dumps([attrs.get("row"), attrs.get("value"), attrs.get("args")])


def _interrupted(trial: FrozenTrial) -> bool:
    """A FAILed trial that stored no result: its worker died (its retry is queued), or it was
    dropped (a second trial of a cell, or a search trial over the budget)."""
    return trial.state == TrialState.FAIL and "result" not in trial.user_attrs


def open_storage(url: str, **options: Any) -> RDBStorage:
    """The study database at ``url`` (``RDBStorage(url, **options)``) as every process of a
    sweep opens it: SQLite waits up to a minute for its one writer and serializes its
    transactions (:func:`_serialize_sqlite`); a PostgreSQL server that does not answer within
    :data:`CONNECT_TIMEOUT` seconds fails the sweep instead of hanging it. A database that
    cannot be opened exits with one line naming it (password masked) and what to do."""
    try:
        parsed = make_url(url)
        connect_args = _connect_args(parsed)
        _check_connection(url, connect_args)
        storage = _create_storage(url, engine_kwargs={"connect_args": connect_args}, **options)
    except (ImportError, SQLAlchemyError, StorageInternalError) as error:
        raise SystemExit(_storage_error(url, error)) from None
    if parsed.get_backend_name() == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


#: seconds a PostgreSQL server has to answer a new connection (libpq's ``connect_timeout``; a
#: URL's own ``?connect_timeout=`` wins): a host that accepts it and never answers would else
#: hold a sweep for minutes, silently
CONNECT_TIMEOUT = 10


def _connect_args(url: URL) -> dict[str, Any]:
    """The driver's connection options for ``url``: SQLite's lock wait, PostgreSQL's timeout."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"timeout": 60}
    if backend == "postgresql" and "connect_timeout" not in url.query:
        return {"connect_timeout": CONNECT_TIMEOUT}
    return {}


def _check_connection(url: str, connect_args: dict[str, Any]) -> None:
    """Connect once, so that a database out of reach fails at once, not after
    :func:`_create_storage`'s retries (each one another connection timeout)."""
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _storage_error(url: str, error: Exception) -> str:
    """The one line that says which database could not be opened, why, and what to do."""
    where = f"error: cannot open the sweep storage {masked_url(url)}"
    if isinstance(error, ImportError):
        return (
            f"{where}: its database driver cannot be imported ({error}); for postgresql:// "
            "URLs: pip install -e '.[postgres]' (psycopg 3)"
        )
    if isinstance(error, ArgumentError):
        return f"{where}: {error}; give a SQLAlchemy URL, e.g. postgresql://user:password@host/db"
    reason = error.orig if isinstance(error, DBAPIError) and error.orig else error
    check = (
        "that its folder exists and is writable"
        if url.startswith("sqlite")
        else "that its server runs at that host and port, and the URL's user, password, database"
    )
    return f"{where}: {' '.join(str(reason).split())}; check {check}"


def masked_url(url: str) -> str:
    """``url`` with its password as ``***``, fit to show (as given if it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _create_storage(url: str, **options: Any) -> RDBStorage:
    """``RDBStorage(url, **options)``; workers that start together on a new database all
    create its tables: those that collide try again, and then find them."""
    for _ in range(4):
        try:
            return RDBStorage(url, **options)
        except (SQLAlchemyError, StorageInternalError):
            time.sleep(random.uniform(0.2, 1))
    return RDBStorage(url, **options)  # the last try raises what is wrong


def _serialize_sqlite(engine: Engine) -> None:
    """Make every SQLite transaction take the write lock as it begins (``BEGIN IMMEDIATE``).

    Optuna claims a waiting trial by reading its state, then writing RUNNING; PostgreSQL locks
    the row it read (``SELECT ... FOR UPDATE``), but pysqlite begins a transaction only at the
    first write, so two processes could both read WAITING and both claim the trial. SQLAlchemy's
    recipe for SQLite's serializable transactions closes that gap."""

    @event.listens_for(engine, "connect")
    def no_implicit_begin(connection: Any, _: Any) -> None:
        connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # the connections opened before these listeners


@contextmanager
def _heartbeat(storage: RDBStorage, trial_id: int, interval: int) -> Iterator[None]:
    """Record ``trial_id``'s heartbeat every ``interval`` seconds while the block runs."""
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class SweepStudy:
    """The study of one sweep, opened (or created) in the database at ``url``; safe to share
    between the worker threads of a process.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///runs/lab1/mlp_depth/study.db`` or
            ``postgresql://user:password@host/db``.
        name: the study's name in that database.
        heartbeat: seconds between a running trial's heartbeats; a trial silent for twice as
            long is stale (its worker died).
        direction: ``maximize`` or ``minimize`` the value told for each trial.
    """

    def __init__(self, url: str, name: str, heartbeat: int, direction: str) -> None:
        # the heartbeat API is still marked experimental (since Optuna 2.9), and Optuna expects
        # it only under Study.optimize: neither warning tells a sweep's user anything
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        self.storage = open_storage(
            url,
            heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
        )
        self.study = optuna.create_study(
            storage=self.storage, study_name=name, direction=direction, load_if_exists=True
        )
        if self.study.direction.name.lower() != direction:
            raise SystemExit(
                f"error: study {name!r} in {masked_url(url)} was made to "
                f"{self.study.direction.name.lower()}; give this sweep another --study"
            )
        self.url, self.name, self.heartbeat = url, name, heartbeat
        self._study_id = self.storage.get_study_id_from_name(name)
        self._ask_lock = threading.Lock()  # a trial's sampler is set between ask and suggest

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def trial_env(self, number: int) -> dict[str, str]:
        """The environment variables (:data:`TRIAL_ENV`) that tell trial ``number``'s run
        where it is in the study."""
        return dict(zip(TRIAL_ENV, (self.url, self.name, str(number)), strict=True))

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def _trial(self, number: int) -> FrozenTrial:
        return self.storage.get_trial(self._trial_id(number))

    def _next(self, take: Callable[[], int | None]) -> int | None:
        """``take()``, or once it finds nothing, ``take()`` again after queueing the trials of
        dead workers (stale heartbeats) anew."""
        number = take()
        if number is None:
            fail_stale_trials(self.study)
            number = take()
        return number

    def queue_cells(self, cells: list[dict[str, Any]]) -> None:
        """Queue every cell (its user attributes: ``row``, ``value``, ``args``) that has no
        finished, running or waiting trial: new cells, and cells that failed in an earlier
        sweep (retried, as a sweep always retried its failed runs). Each trial records its
        ``attempt``, the cell's failed runs so far: workers that queue a cell at once give
        their trials the same attempt, and only the first of them runs."""
        trials = self.trials()
        covered = {cell_key(t.user_attrs) for t in trials if t.state in PENDING_OR_DONE}
        failures = Counter(
            cell_key(t.user_attrs)
            for t in trials
            if t.state == TrialState.FAIL and not _interrupted(t)
        )
        for cell in cells:
            key = cell_key(cell)
            if key not in covered:
                self.study.enqueue_trial({}, user_attrs={**cell, "attempt": failures[key]})

    def next_cell(self, keys: set[str]) -> tuple[int, str] | None:
        """Claim a waiting cell among ``keys`` for this worker: its trial number and key, or
        None when no cell is left."""

        def take() -> int | None:
            for trial in self.trials(TrialState.WAITING):
                key = cell_key(trial.user_attrs)
                if key not in keys:  # a cell of another grid sharing the study
                    continue
                try:
                    claimed = self.storage.set_trial_state_values(
                        self._trial_id(trial.number), TrialState.RUNNING
                    )
                except UpdateFinishedTrialError:
                    claimed = False
                if not claimed:  # another worker was first
                    continue
                if self._has_earlier_trial(trial):  # two workers queued it at once
                    self.study.tell(trial.number, state=TrialState.FAIL)
                    continue
                return trial.number
            return None

        number = self._next(take)
        return None if number is None else (number, cell_key(self._trial(number).user_attrs))

    def _has_earlier_trial(self, trial: FrozenTrial) -> bool:
        """Whether a lower-numbered trial of the same cell is waiting, running or done, or
        failed in the same attempt (workers queued the cell at once, and the first one's run
        failed before this one was claimed): the lowest one runs, any later one is dropped, so
        a cell runs once per sweep."""
        key, attempt = cell_key(trial.user_attrs), trial.user_attrs.get("attempt", 0)
        return any(
            t.number < trial.number
            and cell_key(t.user_attrs) == key
            and (
                t.state in PENDING_OR_DONE
                or (not _interrupted(t) and t.user_attrs.get("attempt", 0) == attempt)
            )
            for t in self.trials()
        )

    def next_search_trial(self, search: Search) -> tuple[int, dict[str, Any], str] | None:
        """A new trial of ``search`` (or the retry of a dead worker's): its number, its
        parameters and its run folder's name; None once the budget is spent."""

        def take() -> int | None:
            with self._ask_lock:
                while True:
                    trials = self.trials()
                    counted = [t for t in trials if not _interrupted(t)]
                    waiting = any(t.state == TrialState.WAITING for t in trials)
                    if len(counted) >= search.trials and not waiting:
                        return None
                    trial = self.study.ask()  # pops a waiting retry first
                    ahead = [t for t in self.trials() if t.number <= trial.number]
                    if sum(not _interrupted(t) for t in ahead) <= search.trials:
                        break
                    self.study.tell(trial, state=TrialState.FAIL)  # others took the last ones
                self.study.sampler = search.sampler_for(trial.number)
                for key, param in search.space.items():
                    param.suggest(trial, key)
                if "run_dir" not in trial.user_attrs:  # a retry resumes its trial's folder
                    trial.set_user_attr("run_dir", f"trial_{trial.number}")
                return trial.number

        number = self._next(take)
        if number is None:
            return None
        trial = self._trial(number)
        return number, trial.params, trial.user_attrs["run_dir"]

    def work(
        self,
        jobs: int,
        take: Callable[[], Taken | None],
        objective: str,
        interrupt: Callable[[], None],
    ) -> None:
        """Run ``jobs`` workers (threads) until ``take()`` finds nothing left: each takes a
        trial (its number, and how to run it on worker ``i``), runs it with a heartbeat, stores
        its result and tells its ``objective``. Once a worker fails, the others stop after their
        current run. Ctrl-C calls ``interrupt()`` (which ends the running runs) and stops them
        all; so does a run that reports it was interrupted (:data:`INTERRUPTED`): the same
        Ctrl-C can end the runs before this thread sees it. The interrupted runs are queued
        again (not failed: a grid or a search resumes them at its next start)."""
        stop = threading.Event()

        def worker(index: int) -> None:
            while not stop.is_set() and (taken := take()) is not None:
                number, run = taken
                if self._run_trial(number, partial(run, index), objective):
                    stop.set()

        with ThreadPoolExecutor(jobs) as pool:
            futures = [pool.submit(worker, index) for index in range(jobs)]
            try:
                for future in futures:
                    future.result()
            except BaseException as error:
                stop.set()
                if isinstance(error, KeyboardInterrupt):
                    interrupt()
                raise

    def _run_trial(self, number: int, run: Callable[[], dict], objective: str) -> bool:
        """COMPLETE with the run's ``objective``; PRUNED for a run its pruning callback stopped
        (``pruned_epoch`` in its result); FAIL for a failed run (a grid retries it at its next
        start) or a missing value; queued again if it was interrupted. Returns whether it was."""
        trial_id = self._trial_id(number)
        with _heartbeat(self.storage, trial_id, self.heartbeat):
            result = run()
        if result["status"] == INTERRUPTED:
            self.study.tell(number, state=TrialState.FAIL)
            RetryHeartbeatStaleTrialCallback()(self.study, self._trial(number))
            return True
        self.storage.set_trial_user_attr(trial_id, "result", result)
        pruned = "pruned_epoch" in result
        value = result.get(objective)
        if pruned:
            self.study.tell(number, state=TrialState.PRUNED)
        elif result["status"] == "ok" and value is not None and math.isfinite(value):
            self.study.tell(number, value)
        else:
            self.study.tell(number, state=TrialState.FAIL)
        return False

    def cell_results(self) -> dict[str, dict]:
        """Every cell's latest word, by key: the result of its finished trial, else
        ``{"status": "running"}`` or ``"waiting"``, else the result of its last failed run."""
        results: dict[str, dict] = {}
        trials = sorted(self.trials(), key=lambda t: (_PRECEDENCE.get(t.state, 3), -t.number))
        for trial in trials:
            if not _interrupted(trial):
                status = {"status": trial.state.name.lower()}
                results.setdefault(
                    cell_key(trial.user_attrs), trial.user_attrs.get("result", status)
                )
        return results

    def search_results(self) -> list[tuple[int, dict[str, Any], dict]]:
        """Every trial of a search but the interrupted ones: number, parameters, result (or
        ``{"status": "running"}`` / ``"waiting"``)."""
        return [
            (t.number, t.params, t.user_attrs.get("result", {"status": t.state.name.lower()}))
            for t in self.trials()
            if not _interrupted(t)
        ]
