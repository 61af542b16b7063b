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
    accuracy_table, every_run = table.split("Every run:")
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
    every_run = table.split("Every run:")[1].splitlines()
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
