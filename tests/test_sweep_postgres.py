"""Sweeps on a PostgreSQL study: two worker processes share a grid on a real server (a throwaway
one, started here with Debian's ``initdb`` and ``pg_ctl``) and run each cell once; a storage that
cannot be opened (silent host, wrong password, no driver) fails fast with one line that names it,
password masked, and says what to do.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import common.study
from common.study import open_storage
from common.sweep import main
from tests.test_sweep_study import (  # noqa: F401 (fake_lab_importable: autouse)
    calls,
    fake_lab_importable,
    start_worker,
    write_config,
)

PASSWORD = "s3cret-pw"


def server_programs() -> Path | None:
    """The folder of PostgreSQL's ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin`` (not on PATH)."""
    if on_path := shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
    newest = max(found, key=lambda p: [int(n) for n in p.parts[-3].split(".")], default=None)
    return None if newest is None else newest.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of its own on 127.0.0.1 for the session (password authentication,
    socket and data in a temporary folder), run as user ``postgres`` when the tests run as
    root (the server refuses root): its URL without a database."""
    programs = server_programs()
    if programs is None:
        pytest.skip(
            "PostgreSQL's server is not installed (no initdb/pg_ctl on PATH or in "
            "/usr/lib/postgresql/*/bin): `make postgres` or `sudo apt-get install postgresql`"
        )
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None or not _user_exists("postgres"):
            pytest.skip("tests run as root, and no user postgres (or runuser) to run the server")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="dla-postgres-"))  # not pytest's: root-only folders
    if as_user:
        shutil.chown(root, "postgres")
    (root / "password").write_text(PASSWORD)
    data, port = root / "data", free_port()

    def run(program: str, *args: str) -> None:
        done = subprocess.run(
            [*as_user, str(programs / program), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    try:
        password = f"--pwfile={root / 'password'}"
        run("initdb", f"-D{data}", "-Upostgres", password, "--auth=scram-sha-256", "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run("pg_ctl", f"-D{data}", f"-l{root / 'server.log'}", "-w", "-t60", "-o", options, "start")
        try:
            yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}"
        finally:
            run("pg_ctl", f"-D{data}", "-mfast", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A new, empty database on the session's server, named after the test."""
    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL's driver: pip install -e '.[dev]'")
    name = request.node.name.lower()[:60]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


def test_two_worker_processes_share_a_grid_on_postgresql_and_run_every_cell_once(
    tmp_path, postgres_url
):
    config = write_config(
        tmp_path,
        experiments={"A": [], "B": ["--fail=true"]},
        parameter="acc",
        values=[0.1, 0.2],
        table="grid.md",
    )
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    storage = f"--storage={postgres_url}"  # postgresql://: SQLAlchemy's default driver, psycopg 3
    env = {"FAKE_LAB_SLEEP": "1", "FAKE_LAB_WAIT_FOR_FITS": "2"}  # as the SQLite test
    workers = [start_worker(config, log, storage, **env) for log in logs]
    assert [worker.wait(timeout=80) for worker in workers] == [0, 0], logs[0].read_text()
    assert calls(tmp_path, "fit") == ["0.1", "0.1", "0.2", "0.2"]  # A and B once
    assert calls(tmp_path, "test") == ["0.1", "0.2"]  # B fails in fit
    ran = [log.read_text().count("\nrun ") + log.read_text().startswith("run ") for log in logs]
    assert min(ran) >= 1 and sum(ran) == 4, ran  # both processes took cells
    trials = optuna.load_study(study_name="grid", storage=postgres_url).trials
    # (a cell both workers queued at once is one more FAIL trial, without a result: dropped)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert sum("result" in t.user_attrs and t.state == TrialState.FAIL for t in trials) == 2
    assert not (tmp_path / "runs/study.db").exists()
    table = (tmp_path / "runs/grid.md").read_text()
    assert "| A | 0.1000 | 0.2000 |" in table and "| B | failed | failed |" in table
    assert f"`{postgres_url.replace(PASSWORD, '***')}`" in table and PASSWORD not in table


def test_a_wrong_password_fails_in_one_line_with_the_password_masked(postgres_url):
    wrong = postgres_url.replace(PASSWORD, "wrong-pw")
    with pytest.raises(SystemExit) as error:
        open_storage(wrong)
    message = str(error.value)
    shown = wrong.replace("wrong-pw", "***")
    assert message.startswith(f"error: cannot open the sweep storage {shown}: ")
    assert 'password authentication failed for user "postgres"' in message
    assert "wrong-pw" not in message and "\n" not in message


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel completes them) and never
    answers: a database host behind a firewall that drops, or a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("default_timeout", "query"),
    [(2, ""), (600, "?connect_timeout=2")],  # 2 s: libpq's least; the URL's own timeout wins
)
def test_a_silent_storage_host_fails_the_sweep_in_one_line_within_the_connect_timeout(
    tmp_path, monkeypatch, silent_host, default_timeout, query
):
    pytest.importorskip("psycopg", reason="PostgreSQL's driver: pip install -e '.[postgres]'")
    monkeypatch.setattr(common.study, "CONNECT_TIMEOUT", default_timeout)  # 10 s in a sweep
    config = write_config(
        tmp_path, experiments={"A": []}, parameter="acc", values=[0.1], table="grid.md"
    )
    url = f"postgresql://sweeper:{PASSWORD}@127.0.0.1:{silent_host}/sweeps{query}"
    outcome: list[BaseException] = []

    def sweep() -> None:
        try:
            main([f"--config={config}", f"--storage={url}"], "tests.fake_lab")
        except BaseException as error:  # what the sweep's process would show
            outcome.append(error)

    start = time.monotonic()
    worker = threading.Thread(target=sweep, daemon=True)
    worker.start()
    worker.join(timeout=60)  # the margin of a loaded machine: without a timeout, ~11 minutes
    assert not worker.is_alive(), "the sweep still waits for a host that never answers"
    assert time.monotonic() - start < 2 + 30
    (error,) = outcome
    assert isinstance(error, SystemExit)
    assert str(error) == (
        f"error: cannot open the sweep storage postgresql://sweeper:***@127.0.0.1:{silent_host}"
        f"/sweeps{query}: connection timeout expired; check that its server runs at that host and"
        " port, and the URL's user, password, database"
    )
    assert not (tmp_path / "calls.txt").exists()  # no run started


def test_a_missing_postgres_driver_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails, as uninstalled
    with pytest.raises(SystemExit) as error:
        open_storage(f"postgresql://sweeper:{PASSWORD}@127.0.0.1:1/sweeps")
    message = str(error.value)
    assert message.startswith(
        "error: cannot open the sweep storage postgresql://sweeper:***@127.0.0.1:1/sweeps: its "
        "database driver cannot be imported ("
    )
    assert message.endswith("; for postgresql:// URLs: pip install -e '.[postgres]' (psycopg 3)")
    assert PASSWORD not in message and "\n" not in message
