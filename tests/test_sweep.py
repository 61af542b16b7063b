"""The depth-study sweep, on FakeData: table, figure, and a failed run that loses nothing."""

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
