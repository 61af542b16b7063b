"""Sweeps on an Optuna study: worker processes share a grid and run each cell once, a killed
worker's cell is run by another, a search spends its budget and ranks its trials, and prunes its
bad ones from inside their fit.

The runs are those of ``tests/fake_lab.py`` (milliseconds each): the point here is who runs what;
tests/test_sweep.py runs real FakeData runs through the same code.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from common.cli import main as lab_main
from common.search import Search
from common.study import TRIAL_ENV, SweepStudy, cell_key
from common.sweep import main
from tests.conftest import REPO
from tests.test_cli import run_fit

SEARCH_CONFIG = REPO / "configs/lab1/sweeps/resnet20_lr_search.yaml"


@pytest.fixture(autouse=True)
def fake_lab_importable(monkeypatch):
    """``python -m tests.fake_lab`` from any process this test starts."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def write_config(tmp_path: Path, **options) -> Path:
    """A sweep config of the fake lab: runs in ``tmp_path/runs`` (whatever ``options`` say),
    each logging its command line to ``tmp_path/calls.txt``."""
    config = {
        **options,
        "args": [f"--calls={tmp_path / 'calls.txt'}"],
        "run_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_worker(
    config: Path, log: Path, *options: str, background: bool = False, **env: str
) -> subprocess.Popen:
    """A sweep process in its own session, so that killing it kills its runs too (as when a
    machine dies); ``background``: started with SIGINT ignored, as a shell starts a script's
    background job (``make test &``), which its runs inherit."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.fake_lab", "sweep", f"--config={config}", *options],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
            if background
            else None,
        )


def calls_or_none(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    return path.read_text().splitlines() if path.is_file() else []


def calls(tmp_path: Path, command: str, option: str = "acc") -> list[str]:
    """The runs' ``command`` (fit or test) invocations, each as the value of its ``option``."""
    lines = (tmp_path / "calls.txt").read_text().splitlines()
    return sorted(
        line.split(f"--{option}=")[1].split()[0] for line in lines if line.split()[0] == command
    )


def load_study(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs/study.db'}")


def test_two_worker_processes_share_a_grid_and_run_every_cell_once(tmp_path):
    config = write_config(
        tmp_path,
        experiments={"A": [], "B": ["--fail=true"]},
        parameter="acc",
        values=[0.1, 0.2, 0.3],
        table="grid.md",
    )
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    # each run waits for both workers' first runs: a worker that starts after a cell failed
    # would queue it again (a new sweep retries failed cells), which is not what is tested here
    env = {"FAKE_LAB_SLEEP": "1", "FAKE_LAB_WAIT_FOR_FITS": "2"}
    workers = [start_worker(config, log, **env) for log in logs]
    assert [worker.wait(timeout=80) for worker in workers] == [0, 0], logs[0].read_text()
    assert calls(tmp_path, "fit") == ["0.1", "0.1", "0.2", "0.2", "0.3", "0.3"]  # A and B once
    assert calls(tmp_path, "test") == ["0.1", "0.2", "0.3"]  # B fails in fit
    ran = [log.read_text().count("\nrun ") + log.read_text().startswith("run ") for log in logs]
    assert min(ran) >= 1 and sum(ran) == 6, ran  # both processes took cells
    trials = load_study(tmp_path, "grid").trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert sum("result" in t.user_attrs and t.state == TrialState.FAIL for t in trials) == 3
    table = (tmp_path / "runs/grid.md").read_text()  # the last worker's: every cell finished
    assert (
        "| A | 0.1000 | 0.2000 | 0.3000 |" in table and "| B | failed | failed | failed |" in table
    )
    assert table.count("| failed: error: invalid configuration: this run fails |") == 3


def test_a_killed_workers_cell_is_run_by_the_next_worker(tmp_path):
    config = write_config(
        tmp_path, experiments={"A": []}, parameter="acc", values=[0.1, 0.2], table="grid.md"
    )
    first = start_worker(config, tmp_path / "first.log", "--heartbeat=1", FAKE_LAB_SLEEP="60")
    deadline = time.monotonic() + 60
    while not calls_or_none(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert calls(tmp_path, "fit") == ["0.1"], (tmp_path / "first.log").read_text()
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its run: a machine that died
    first.wait()
    time.sleep(3)  # its trial's last heartbeat is now older than the grace period (2 x 1 s)
    second = start_worker(config, tmp_path / "second.log", "--heartbeat=1")
    assert second.wait(timeout=60) == 0, (tmp_path / "second.log").read_text()
    assert calls(tmp_path, "fit") == ["0.1", "0.1", "0.2"]  # the killed run, again, once
    assert calls(tmp_path, "test") == ["0.1", "0.2"]
    states = [(t.user_attrs["value"], t.state) for t in load_study(tmp_path, "grid").trials]
    assert sorted(states) == [
        (0.1, TrialState.COMPLETE),
        (0.1, TrialState.FAIL),  # stale: its worker's heartbeat stopped
        (0.2, TrialState.COMPLETE),
    ]
    assert "| A | 0.1000 | 0.2000 |" in (tmp_path / "runs/grid.md").read_text()


def run_processes(worker: subprocess.Popen) -> list[int]:
    """The process ids of a sweep worker's runs (its children, from Linux's /proc)."""
    children = Path(f"/proc/{worker.pid}/task").glob("*/children")
    return [int(pid) for path in children for pid in path.read_text().split()]


def interrupt_a_sweep(tmp_path: Path, ctrl_c: str) -> Path:
    """Start a 2-job sweep of 3 cells whose runs last a minute, and send SIGINT to ``ctrl_c``
    (``"sweep and runs"``: a terminal's Ctrl-C; ``"sweep"``: ``kill -INT`` of the sweep;
    ``"runs"``: the runs end before the sweep sees the Ctrl-C) once two runs started: the sweep
    stops within 30 s, its two runs queued again, the third never started. Returns its config."""
    config = write_config(
        tmp_path, experiments={"A": []}, parameter="acc", values=[0.1, 0.2, 0.3], table="g.md"
    )
    log = tmp_path / "first.log"
    # in the background: SIGINT still stops it (the old flaky failure, under `make test &`)
    worker = start_worker(config, log, "--jobs=2", background=True, FAKE_LAB_SLEEP="60")
    deadline = time.monotonic() + 60
    while len(calls_or_none(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    targets = {"sweep and runs": [-worker.pid], "sweep": [worker.pid]}  # -pid: its group
    for pid in targets.get(ctrl_c) or run_processes(worker):
        os.kill(pid, signal.SIGINT)
    try:
        worker.wait(timeout=30)
    finally:  # a sweep that did not stop leaves no minute-long runs behind
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    states = [(t.user_attrs["value"], t.state.name) for t in load_study(tmp_path, "g").trials]
    assert sorted(states) == [
        (0.1, "FAIL"),  # interrupted, with no result: not a failed run
        (0.1, "WAITING"),  # its retry
        (0.2, "FAIL"),
        (0.2, "WAITING"),
        (0.3, "WAITING"),  # never started
    ], log.read_text()
    assert calls(tmp_path, "fit") == ["0.1", "0.2"]
    progress = [line for line in log.read_text().splitlines() if line.startswith("  a_0_")]
    assert sorted(progress) == [
        "  a_0_1: interrupted, queued again",
        "  a_0_2: interrupted, queued again",
    ]
    return config


def test_ctrl_c_queues_the_interrupted_runs_again_and_the_next_start_finishes_them(tmp_path):
    config = interrupt_a_sweep(tmp_path, "sweep and runs")
    second = start_worker(config, tmp_path / "second.log")
    assert second.wait(timeout=60) == 0, (tmp_path / "second.log").read_text()
    assert calls(tmp_path, "fit") == ["0.1", "0.1", "0.2", "0.2", "0.3"]
    assert "| A | 0.1000 | 0.2000 | 0.3000 |" in (tmp_path / "runs/g.md").read_text()


@pytest.mark.parametrize(
    "ctrl_c",
    [
        "sweep",
        pytest.param(
            "runs",
            marks=pytest.mark.skipif(
                not Path("/proc/self/task").is_dir(), reason="finds the runs in Linux's /proc"
            ),
        ),
    ],
)
def test_ctrl_c_stops_a_sweep_at_once_whichever_process_sees_it_first(tmp_path, ctrl_c):
    interrupt_a_sweep(tmp_path, ctrl_c)


def test_no_run_starts_after_ctrl_c(tmp_path):
    from common.sweep import RunProcesses, run_one

    processes = RunProcesses()
    processes.interrupt()
    args = [f"--calls={tmp_path / 'calls.txt'}"]
    result = run_one("tests.fake_lab", args, tmp_path / "run", 1, processes=processes)
    assert result == {"args": args, "status": "interrupted"}
    assert not (tmp_path / "calls.txt").exists()


def test_progress_lines_show_metrics_with_4_decimals(tmp_path, caplog):
    config = write_config(
        tmp_path, experiments={"A": []}, parameter="acc", values=[0.11874999850988388], table="g.md"
    )
    with caplog.at_level("INFO", logger="common.sweep"):
        main([f"--config={config}"], "tests.fake_lab")
    assert "  a_0_11874999850988388: ok, test acc 0.1187" in caplog.messages


def test_a_cell_queued_twice_at_once_runs_once(tmp_path):
    study = SweepStudy(f"sqlite:///{tmp_path / 'study.db'}", "grid", 60, "maximize")
    cells = [{"row": "A", "value": v, "args": [f"--acc={v}"]} for v in (1, 2)]
    for cell in [*cells, *cells]:  # what two workers that start together both do
        study.study.enqueue_trial({}, user_attrs=cell)
    claimed = []

    def take():
        if (trial := study.next_cell({cell_key(c) for c in cells})) is None:
            return None
        claimed.append(trial[1])
        return trial[0], lambda worker: {"status": "ok", "test_acc": 0.5}

    study.work(2, take, "test_acc", interrupt=lambda: None)
    assert sorted(claimed) == sorted(cell_key(c) for c in cells)
    assert [t.state for t in study.trials()] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2
    assert study.cell_results() == {cell_key(c): {"status": "ok", "test_acc": 0.5} for c in cells}


def test_a_failing_cell_queued_twice_at_once_runs_once_and_the_next_sweep_retries_it(
    tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cells = [{"row": "B", "value": v, "args": ["--fail=true", f"--acc={v}"]} for v in (1, 2)]
    keys = {cell_key(c) for c in cells}
    workers = [SweepStudy(url, "grid", 60, "maximize") for _ in range(2)]
    workers[0].queue_cells(cells)
    with monkeypatch.context() as m:  # the second read the study before the first queued
        m.setattr(workers[1], "trials", lambda *states: [])
        workers[1].queue_cells(cells)
    assert len(workers[0].trials()) == 4
    runs = []

    def take(study):
        def next_run():
            if (trial := study.next_cell(keys)) is None:
                return None
            runs.append(trial[1])
            return trial[0], lambda worker: {"status": "failed: error: this run fails"}

        return next_run

    workers[0].work(1, take(workers[0]), "test_acc", interrupt=lambda: None)  # fails both
    workers[1].work(1, take(workers[1]), "test_acc", interrupt=lambda: None)
    assert sorted(runs) == sorted(keys)  # the duplicates of failed cells did not run again
    workers[1].queue_cells(cells)  # a new sweep retries the failed cells, once
    workers[1].work(1, take(workers[1]), "test_acc", interrupt=lambda: None)
    assert sorted(runs) == sorted([*keys, *keys])


def search_table_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ") and "trial" not in line]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]


def test_a_search_spends_its_budget_and_ranks_its_trials(tmp_path):
    space = {"lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True}}
    config = write_config(
        tmp_path,
        experiments={"fake": []},
        search={"space": space, "trials": 3, "startup_trials": 2},
        table="search.md",
        jobs=2,
    )
    results = main([f"--config={config}"], "tests.fake_lab")
    trials = load_study(tmp_path, "search").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:  # the fake's val/acc is its --lr: the objective is the drawn value
        assert trial.value == trial.params["lr"] == results[trial.number]["best_val_acc"]
        assert trial.user_attrs["run_dir"] == f"trial_{trial.number}"
    assert len({t.params["lr"] for t in trials}) == 3  # each trial has its own seed
    table = (tmp_path / "runs/search.md").read_text()
    rows = search_table_rows(table)
    ranked = sorted(trials, key=lambda t: t.value, reverse=True)
    assert [row[0] for row in rows] == [str(t.number) for t in ranked]
    assert [row[2] for row in rows] == [f"{t.value:.4f}" for t in ranked]
    best = max(trials, key=lambda t: t.value)
    assert f"Best: trial {best.number}, `--lr={best.params['lr']}`." in table
    main([f"--config={config}"], "tests.fake_lab")  # the budget is spent: nothing runs again
    assert len(calls(tmp_path, "fit", "lr")) == 3
    assert search_table_rows((tmp_path / "runs/search.md").read_text()) == rows


def test_the_example_search_sets_keys_of_the_resnet20_recipe(capsys):
    with pytest.raises(SystemExit) as done:
        lab_main("lab1", ["sweep", f"--config={SEARCH_CONFIG}", "--print_config"])
    assert done.value.code in (0, None)
    sweep = yaml.safe_load(capsys.readouterr().out)
    (base,) = sweep["experiments"].values()
    overrides = [f"--{key}={param['low']}" for key, param in sweep["search"]["space"].items()]
    pruning = Search(**{**sweep["search"], "space": {}}).pruning_args()
    with pytest.raises(SystemExit) as done:
        lab_main("lab1", ["fit", *base, *overrides, *pruning, "--print_config"])
    assert done.value.code in (0, None)
    recipe = yaml.safe_load(capsys.readouterr().out)
    optimizer = recipe["model"]["init_args"]["optimizer"]["init_args"]
    assert (optimizer["lr"], optimizer["weight_decay"]) == (0.02, 1e-5)
    assert recipe["trainer"]["callbacks"][-1] == {  # the search's pruner, in its trials' fit
        "class_path": "common.callbacks.OptunaPruning",
        "init_args": {"monitor": "val/acc", "warmup_epochs": 5, "startup_trials": 5},
    }


def test_each_worker_runs_on_its_own_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = write_config(
        tmp_path, experiments={"A": []}, parameter="acc", values=[0.1, 0.2, 0.3], table="g.md"
    )
    main([f"--config={config}", "--devices=[2, 5]"], "tests.fake_lab")  # 2 jobs: one per GPU
    assert set(calls(tmp_path, "fit", "gpus")) <= {"2", "5"}
    assert len(calls(tmp_path, "fit", "gpus")) == 3
    assert "2 job(s)" in (tmp_path / "runs/g.md").read_text()


def test_a_sweep_without_grid_or_search_says_what_it_needs(tmp_path):
    config = write_config(tmp_path, experiments={"A": []}, table="grid.md")
    with pytest.raises(SystemExit, match="needs --parameter and --values"):
        main([f"--config={config}"], "tests.fake_lab")
    search = "--search={space: {lr: {type: float}}, trials: 2}"
    with pytest.raises(SystemExit, match="^error: --search: a float parameter needs low and high"):
        main([f"--config={config}", search], "tests.fake_lab")
    search = "--search={space: {}, trials: 2, pruner: median, direction: minimize}"
    with pytest.raises(SystemExit, match="^error: --search: a pruner compares val/acc, which"):
        main([f"--config={config}", search], "tests.fake_lab")


def test_the_table_from_the_study_is_the_table_of_the_runs_results(tmp_path):
    """What the sweep wrote before the study: write_table over run_one's results (each reused
    from its result.json) in grid order; the depth-study config's rows on fake runs."""
    from common.sweep import run_one, slugify, write_table

    sweep = yaml.safe_load((REPO / "configs/lab1/sweeps/mlp_depth.yaml").read_text())
    fake_args = [f"--calls={tmp_path / 'calls.txt'}"]
    config = write_config(tmp_path, **{**sweep, "args": fake_args, "figure": None, "jobs": 2})
    results = main([f"--config={config}"], "tests.fake_lab")
    old = {}
    for name in sweep["experiments"]:
        for value in sweep["values"]:
            args = [*sweep["experiments"][name], f"--{sweep['parameter']}={value}", *fake_args]
            run_dir = tmp_path / "runs" / f"{slugify(name)}_{slugify(str(value))}"
            old[(name, value)] = run_one("tests.fake_lab", args, run_dir, threads=1)
    assert list(results) == list(old)
    path = tmp_path / "old.md"
    write_table(path, old, list(sweep["experiments"]), sweep["values"], "depth", "# mlp_depth")
    new_table = (tmp_path / "runs" / sweep["table"]).read_text()
    assert new_table.split("\n\n", 2)[2] == path.read_text().split("\n\n", 1)[1]
    assert len(calls(tmp_path, "fit", "trainer.default_root_dir")) == 12  # all reused
    assert json.loads((tmp_path / "runs/mlp_2/result.json").read_text()) == old[("MLP", 2)]


def test_a_search_with_a_pruner_tells_its_pruned_trials_and_lists_them_last(tmp_path, monkeypatch):
    space = {"lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True}}
    search = {"space": space, "trials": 3, "pruner": "median", "pruning_warmup_epochs": 1}
    config = write_config(tmp_path, experiments={"fake": []}, search=search, table="search.md")
    monkeypatch.setenv("FAKE_LAB_PRUNE", "1")  # the fake fit of trial 1 is pruned after 2 epochs
    results = main([f"--config={config}"], "tests.fake_lab")
    trials = load_study(tmp_path, "search").trials
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    url = f"sqlite:///{tmp_path / 'runs/study.db'}"
    fits = [line for line in calls_or_none(tmp_path) if line.startswith("fit ")]
    assert len(fits) == 3  # the pruned trial counts toward the budget
    for number, line in enumerate(fits):  # each fit knows its trial, and has the callback
        assert f"--trainer.default_root_dir={tmp_path / 'runs'}/trial_{number} " in line
        assert f"--optuna={url},search,{number}" in line.split()
        assert "--trainer.callbacks+=common.callbacks.OptunaPruning" in line.split()
    assert len(calls(tmp_path, "test", "lr")) == 3  # the pruned trial's best checkpoint too
    assert results[1]["status"] == "pruned after 2 epochs"
    table = (tmp_path / "runs/search.md").read_text()
    assert "tpe sampler, median pruner after 1 warmup epochs, 3 trials" in table
    rows = search_table_rows(table)
    pruned = rows[-1]  # after the finished trials: its accuracies, fit wall time and status
    assert pruned[0] == "1" and pruned[2:4] == [f"{trials[1].params['lr']:.4f}"] * 2
    assert pruned[5] == "pruned after 2 epochs"
    assert "Best: trial 1" not in table


@pytest.mark.parametrize(("finished", "epochs"), [(0.99, 2), (0.0, 3)])
def test_a_fit_below_the_finished_trials_median_stops_after_its_warmup(
    tmp_path, monkeypatch, finished, epochs
):
    """The callback in a real fit (FakeData: val/acc near chance), with the arguments a search
    with a pruner adds: two finished trials at ``finished`` every epoch prune it at its second
    epoch (the first is its warmup); trials at 0 let it run its 3 epochs."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    for _ in range(2):
        steps = dict.fromkeys(range(3), finished)
        study.add_trial(optuna.trial.create_trial(value=finished, intermediate_values=steps))
    number = study.ask().number
    for key, value in zip(TRIAL_ENV, (url, "s", str(number)), strict=True):
        monkeypatch.setenv(key, value)
    search = Search(space={}, trials=3, startup_trials=2, pruner="median", pruning_warmup_epochs=1)
    run_fit(tmp_path, "--trainer.max_epochs=3", *search.pruning_args())
    reported = study.trials[number].intermediate_values
    assert list(reported) == list(range(epochs))  # one report per epoch, the epoch its step
    assert study.trials[number].state == TrialState.RUNNING  # the sweep tells it, not the fit
    last = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == epochs - 1  # stopped, with its checkpoints
    pruned = tmp_path / "pruned.json"
    if epochs == 2:
        assert json.loads(pruned.read_text()) == {"epoch": 1, "value": reported[1]}
    else:
        assert not pruned.exists()


def test_the_pruning_callback_outside_a_search_says_so_in_one_line(tmp_path, monkeypatch):
    for key in TRIAL_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit) as error:
        run_fit(tmp_path, "--trainer.callbacks+=common.callbacks.OptunaPruning")
    message = str(error.value)
    assert message.startswith(
        "error: OptunaPruning runs inside a sweep search with a pruner: DLA_OPTUNA_STORAGE, "
        "DLA_OPTUNA_STUDY, DLA_OPTUNA_TRIAL not set"
    )
    assert "\n" not in message
