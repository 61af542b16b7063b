"""The depth-study sweep, on FakeData: table, figure, and a failed run that loses nothing."""

import yaml

from common.cli import main
from tests.conftest import REPO


def test_sweep_writes_table_and_figure_and_reports_failed_runs(tmp_path):
    fake = [
        "--trainer.max_epochs=1",
        "--data=common.data.FakeDataModule",
        "--data.image_shape=[1,28,28]",
        "--data.train_size=64",
        "--data.val_size=32",
        "--data.batch_size=32",
    ]
    main(
        "lab1",
        [
            "sweep",
            f"--config={REPO / 'configs/lab1/sweeps/mlp_depth.yaml'}",
            "--values=[3]",  # depth 3 cannot be cut into blocks of 2 layers: that run fails
            f"--args={fake}",
            f"--run_dir={tmp_path / 'runs'}",
            f"--table={tmp_path / 'table.md'}",
            f"--figure={tmp_path / 'grad.png'}",
            "--jobs=2",
        ],
    )
    table = (tmp_path / "table.md").read_text()
    accuracy_table, every_run = table.split("Every run")
    cells = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in accuracy_table.splitlines()
        if line.startswith("| ") and "depth" not in line
    }
    assert cells["ResidualMLP 2 layers/block"] == "failed"
    assert 0 <= float(cells["MLP"]) <= 1 and 0 <= float(cells["ResidualMLP 1 layer/block"]) <= 1
    assert "failed: error: invalid configuration: depth=3 is not a multiple" in every_run
    assert (tmp_path / "grad.png").stat().st_size > 1000


def test_cnn_depth_sweep_runs_on_fake_data_and_draws_the_curves(tmp_path):
    fake = [
        "--trainer.max_epochs=2",
        "--data=common.data.FakeDataModule",
        "--data.train_size=64",
        "--data.val_size=32",
        "--data.batch_size=32",
    ]
    main(
        "lab1",
        [
            "sweep",
            f"--config={REPO / 'configs/lab1/sweeps/cnn_depth.yaml'}",
            "--values=[[1, 1, 1]]",
            f"--args={fake}",
            f"--run_dir={tmp_path / 'runs'}",
            f"--table={tmp_path / 'table.md'}",
            f"--curves={tmp_path / 'curves.png'}",
            "--jobs=2",
        ],
    )
    table = (tmp_path / "table.md").read_text()
    assert table.count("| ok |") == 2, table
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_finetune_sweep_puts_the_baselines_first_and_counts_trainable_parameters(tmp_path):
    fake = ["--data=common.data.FakeDataModule", "--data.train_size=64", "--data.val_size=32"]
    svm = ["baseline", f"--config={REPO / 'configs/lab1/transfer/svm_baseline.yaml'}", *fake]
    sweep = yaml.safe_load((REPO / "configs/lab1/sweeps/finetune.yaml").read_text())
    adamw = sweep["experiments"]["AdamW"]
    main(
        "lab1",
        [
            "sweep",
            f"--config={REPO / 'configs/lab1/sweeps/finetune.yaml'}",
            f"--baselines={{'linear SVM': {svm}}}",
            f"--experiments={{'AdamW': {adamw}}}",
            "--values=[head]",
            f"--args={[*fake, '--data.batch_size=32', '--trainer.max_epochs=1']}",
            f"--run_dir={tmp_path / 'runs'}",
            f"--table={tmp_path / 'table.md'}",
            f"--curves={tmp_path / 'curves.png'}",
        ],
    )
    table = (tmp_path / "table.md").read_text()
    every_run = table.split("Every run")[1].splitlines()
    rows = [
        line.split("|")[1:-1] for line in every_run if line.startswith("| ") and "---" not in line
    ]
    names = [cells[0].strip() for cells in rows[1:]]
    assert names == ["linear SVM", "AdamW"]
    params = {cells[0].strip(): cells[5].strip() for cells in rows[1:]}
    assert params == {"linear SVM": "650", "AdamW": "650"}  # 64·10 + 10: the head only
    assert all(cells[-1].strip() == "ok" for cells in rows[1:])
    assert "Baselines: linear SVM" in table


def test_the_table_names_the_teacher_of_a_distillation_sweep(tmp_path):
    from common.sweep import write_table

    run = {"status": "ok", "test_acc": 0.5, "fit_seconds": 1.0}
    results = {
        ("alone", None): run,
        ("distilled", 1): {**run, "test_acc": 0.6, "teacher_test_acc": 0.875},
        ("distilled", 2): {**run, "test_acc": 0.625, "teacher_test_acc": 0.875},
    }
    path = tmp_path / "table.md"
    write_table(path, results, ["distilled"], [1, 2], "T", "# distillation")
    text = path.read_text()
    assert "Teacher: 0.8750 test accuracy." in text
    assert "| distilled | 0.6000 | 0.6250 |" in text
    assert "Baselines: alone 0.5000." in text


def test_a_resumed_runs_curve_time_and_epochs_span_all_its_sessions(tmp_path):
    """An interrupted fit resumed in a new version_* (then tested): the reused result reads the
    whole training from the logs, not only its last session, nor what result.json said."""
    import json
    import os

    from common.sweep import run_one

    run_dir = tmp_path / "run"

    def session(version: int, ckpt_path: str | None, rows: list[str], start: int, end: int):
        folder = run_dir / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.safe_dump({"ckpt_path": ckpt_path}))
        (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
        os.utime(folder / "config.yaml", (start, start))
        os.utime(folder / "metrics.csv", (end, end))

    header = "epoch,step,train/loss,trainable_params,val/acc"
    session(0, None, [header, ",0,,44,", "0,9,2.0,,0.4", "1,19,1.5,,0.5"], 1_000, 1_100)
    session(1, "last.ckpt", [header, "2,29,1.0,,0.7", "3,39,0.8,,0.6"], 5_000, 5_080)
    session(2, "best.ckpt", ["epoch,step,test/acc", "2,40,0.65"], 6_000, 6_010)
    args = ["--config=x.yaml"]
    stale = {"args": args, "status": "ok", "val_curve": [[2, 0.7], [3, 0.6]], "fit_seconds": 80}
    (run_dir / "result.json").write_text(json.dumps(stale))
    result = run_one("lab1", args, run_dir, threads=1)
    assert result["val_curve"] == [[0, 0.4], [1, 0.5], [2, 0.7], [3, 0.6]]
    assert result["best_val_acc"] == 0.7
    assert result["final_train_loss"] == 0.8
    assert result["trainable_params"] == 44
    assert result["fit_epochs"] == 4
    assert result["fit_seconds"] == 180  # 100 + 80 s: the pause between sessions is not counted
    assert result["test_acc"] == 0.65


def test_the_curves_can_show_the_baselines_against_the_best_run_only():
    from common.sweep import baselines_and_best

    results = {
        ("alone", "–"): {"status": "ok", "test_acc": 0.8},
        ("distilled", 1): {"status": "ok", "test_acc": 0.81},
        ("distilled", 2): {"status": "ok", "test_acc": 0.83},
        ("distilled", 4): {"status": "running"},
    }
    assert list(baselines_and_best(results, ["distilled"])) == [("alone", "–"), ("distilled", 2)]
    assert list(baselines_and_best({("distilled", 4): {}}, ["distilled"])) == []


def test_a_failed_runs_reason_is_its_error_line_not_what_wandb_prints_after_it():
    from common.sweep import failure_reason

    output = "\n".join(
        [
            "Seed set to 0",
            "\x1b[34m\x1b[1mwandb\x1b[0m: \x1b[31mERROR\x1b[0m Run finished with errors",
            "error: the checkpoint does not fit the configured model; give the model config",
            "\x1b[34m\x1b[1mwandb\x1b[0m: Find logs at: \x1b[35mwandb/run/logs\x1b[0m",
            "",
        ]
    )
    reason = "error: the checkpoint does not fit the configured model; give the model config"
    assert failure_reason(output) == reason
    assert failure_reason("Traceback (most recent call last):\nValueError: bad\n") == (
        "ValueError: bad"
    )
    assert failure_reason("\x1b[1mSegmentation fault\x1b[0m\n") == "Segmentation fault"
    assert failure_reason("\x1b[34mwandb\x1b[0m: Find logs at: x\n") == "(no output)"
