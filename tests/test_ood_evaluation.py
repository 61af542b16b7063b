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
    (odin_name,) = {r["detector"] for r in rows if r["detector"].startswith("odin")}
    # ODIN's pair comes from the configured grid, chosen on the validation split
    temperature, epsilon = odin_name.removeprefix("odin_T").split("_eps")
    assert float(temperature) in (1, 10, 100, 1000) and float(epsilon) <= 0.004
    (knn_name,) = {r["detector"] for r in rows if r["detector"].startswith("knn")}
    assert int(knn_name.removeprefix("knn")) in (1, 5, 10, 20, 50, 100, 200)
    detectors = {"msp", "max_logit", "energy", odin_name, "mahalanobis", knn_name}
    assert {r["detector"] for r in rows} == detectors
    assert {r["ood_set"] for r in rows} == {"imagenette", "mnist", "fake"}
    assert all(0 <= float(r["auroc"]) <= 1 and 0 <= float(r["fpr95"]) <= 1 for r in rows)
    assert "| imagenette | msp |" in (version / "ood_metrics.md").read_text()
    for name in detectors:
        assert (version / f"ood_{name}.png").stat().st_size > 10_000
    assert len({r["id_accuracy"] for r in rows}) == 1 and 0 <= float(rows[0]["id_accuracy"]) <= 1

    # the cross-model table reads the run folder
    table = tmp_path / "results" / "ood.md"
    main("lab4", ["report", f"--runs={{'tiny ResNet-20': '{run_dir}'}}", f"--output={table}"])
    text = table.read_text()
    msp_row = next(line for line in text.splitlines() if "| msp |" in line)
    assert msp_row.startswith(f"| tiny ResNet-20 | {float(rows[0]['id_accuracy']):.4f} | msp |")
    assert msp_row.count(" / ") == 3 * 3  # four metrics for each of the three OOD sets
    assert (table.parent / "ood_tiny_resnet_20_msp.png").is_file()


def test_odin_search_reuses_gradients_and_reports_the_winner(ood_folders, tmp_path):
    import json

    import torch

    from lab4.detectors import odin_grid

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    batches = [torch.rand(6, 3, 32, 32), torch.rand(4, 3, 32, 32)]
    shared = odin_grid(model, batches, [1, 100], [0, 0.01])
    naive = odin_grid(model, batches, [1, 100], [0, 0.01], reuse_gradient=False)
    assert shared.shape == (2, 2, 10)
    torch.testing.assert_close(shared, naive)
    output = tmp_path / "odin"
    main(
        "lab4",
        [
            "odin",
            f"--config={REPO / 'configs/lab4/ood/odin_search.yaml'}",
            f"--data.data_dir={ood_folders}",
            "--data.val_size=4",
            "--data.fake_size=8",
            "--data.download=false",
            "--temperatures=[1, 1000]",
            "--epsilons=[0, 0.002]",
            f"--output={output}",
        ],
    )
    result = json.loads(output.with_suffix(".json").read_text())
    assert result["temperature"] in (1, 1000) and result["epsilon"] in (0, 0.002)
    assert set(result["test"]) == {"imagenette", "mnist", "fake"}
    assert "naive_seconds" in result and output.with_suffix(".png").stat().st_size > 10_000


def test_ood_metrics_on_validation_splits_every_n_epochs(ood_folders, tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from common.callbacks import OODEvaluation
    from common.classifier import ImageClassifier
    from lab4.data import OODDataModule
    from lab4.detectors import ODIN, MaxSoftmax
    from lab4.models import SimpleCNN

    data = OODDataModule(data_dir=ood_folders, download=False, val_size=4, fake_size=8)
    model = ImageClassifier(SimpleCNN((4, 8)), num_classes=10, normalization=data.normalization)
    callback = OODEvaluation(
        [MaxSoftmax(), ODIN(temperatures=[1, 10], epsilons=[0, 0.002])], every_n_val_epochs=2
    )
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[callback],
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    header = next((tmp_path / "lightning_logs").glob("version_*/metrics.csv")).read_text()
    assert "ood_val/imagenette/msp/auroc" in header and "ood_val/fake/msp/fpr95" in header
    assert "ood_val/mnist/odin_T" in header  # tuned on the validation pair, then scored
    assert not list(tmp_path.rglob("ood_metrics.csv"))  # files are written at test end only
