"""The OOD evaluation callback end to end through ``python -m lab4 test``."""

import csv

from common.cli import main
from tests.conftest import REPO


def test_ood_callback_writes_metrics_table_and_figures(ood_folders, tmp_path):
    run_dir = tmp_path / "run"
    main(
        "lab4",
        [
            "test",
            f"--config={REPO / 'configs/lab4/ood/resnet20_pretrained.yaml'}",
            f"--data.data_dir={ood_folders}",
            "--data.val_size=4",
            "--data.fake_size=8",
            "--data.download=false",
            f"--trainer.default_root_dir={run_dir}",
        ],
    )
    (version,) = run_dir.glob("version_*")
    with open(version / "ood_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    detectors = {"msp", "max_logit", "energy", "odin_T1000_eps0.0014", "mahalanobis", "knn50"}
    assert {r["detector"] for r in rows} == detectors
    assert {r["ood_set"] for r in rows} == {"imagenette", "mnist", "fake"}
    assert all(0 <= float(r["auroc"]) <= 1 and 0 <= float(r["fpr95"]) <= 1 for r in rows)
    assert "| imagenette | msp |" in (version / "ood_metrics.md").read_text()
    for name in detectors:
        assert (version / f"ood_{name}.png").stat().st_size > 10_000
