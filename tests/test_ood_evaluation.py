"""The OOD evaluation callback: end to end through ``python -m lab4 test``, and its test loop
(one pass over the ID test set, the same metrics as a separate pass)."""

import csv
import json
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from common.callbacks import OODEvaluation
from common.classifier import ImageClassifier
from common.cli import main
from common.features import penultimate
from common.metrics import OOD_METRICS, ood_metrics
from lab4.data import OODDataModule
from lab4.detectors import ODIN, Energy, Mahalanobis, MaxSoftmax, energy, max_softmax
from lab4.models import SimpleCNN
from tests.conftest import REPO

TINY_DATA = ["--data.val_size=4", "--data.fake_size=8", "--data.download=false"]


def read_rows(version) -> list[dict]:
    with open(version / "ood_metrics.csv") as f:
        return list(csv.DictReader(f))


def test_ood_callback_writes_metrics_table_figures_and_tuning(ood_folders, tmp_path):
    run_dir = tmp_path / "run"
    main(
        "lab4",
        [
            "test",
            f"--config={REPO / 'configs/lab4/ood/resnet20_pretrained.yaml'}",
            f"--data.data_dir={ood_folders}",
            *TINY_DATA,
            f"--trainer.default_root_dir={run_dir}",
        ],
    )
    (version,) = run_dir.glob("version_*")
    rows = read_rows(version)
    (odin_name,) = {r["detector"] for r in rows if r["detector"].startswith("odin")}
    # ODIN's pair comes from the configured grid, chosen on the validation split
    temperature, epsilon = odin_name.removeprefix("odin_T").split("_eps")
    assert float(temperature) in (1, 10, 100, 1000) and float(epsilon) <= 0.004
    (knn_name,) = {r["detector"] for r in rows if r["detector"].startswith("knn")}
    assert int(knn_name.removeprefix("knn")) in (1, 5, 10, 20, 50, 100, 200)
    tuned = {prefix: next(r["detector"] for r in rows if r["detector"].startswith(prefix))
             for prefix in ("react", "vim", "gen_")}  # fmt: skip
    assert float(tuned["react"].removeprefix("react")) in (80, 90, 95, 99, 99.5, 99.9)
    assert int(tuned["vim"].removeprefix("vim")) in (8, 16, 24, 32, 48)
    detectors = {"msp", "max_logit", "energy", odin_name, "mahalanobis", knn_name, *tuned.values()}
    assert {r["detector"] for r in rows} == detectors
    assert {r["ood_set"] for r in rows} == {"imagenette", "mnist", "fake"}
    assert all(0 <= float(r["auroc"]) <= 1 and 0 <= float(r["fpr95_ood_caught"]) <= 1 for r in rows)
    markdown = (version / "ood_metrics.md").read_text()
    assert "| imagenette | near | msp |" in markdown and "| far | msp |" in markdown
    # OpenOOD-style group means: near = imagenette (no cifar100 here), far = mnist and fake
    with open(version / "ood_summary.csv") as f:
        summary = {(r["group"], r["detector"]): r for r in csv.DictReader(f)}
    assert {g for g, _ in summary} == {"near", "far"}
    assert summary["near", "msp"]["ood_sets"] == "imagenette"
    assert summary["far", "msp"]["ood_sets"] == "mnist fake"
    by_set = {(r["ood_set"], r["detector"]): r for r in rows}
    for metric in OOD_METRICS:
        far = (float(by_set["mnist", "msp"][metric]) + float(by_set["fake", "msp"][metric])) / 2
        assert float(summary["far", "msp"][metric]) == pytest.approx(far)
    assert "- msp: near AUROC" in markdown and "ID accuracy" in markdown
    for name in detectors:
        assert (version / f"ood_{name}.png").stat().st_size > 10_000
    assert len({r["id_accuracy"] for r in rows}) == 1 and 0 <= float(rows[0]["id_accuracy"]) <= 1

    # each tuned detector's grid, its choice and a figure (heat-map for ODIN, line for k-NN)
    odin = json.loads((version / f"ood_tuning_{odin_name}.json").read_text())
    assert odin["grid"] == {
        "temperature": [1, 10, 100, 1000],
        "epsilon": [0, 0.0005, 0.001, 0.002, 0.004],
    }
    assert torch.tensor(odin["val_auroc_grid"]).shape == (4, 5)
    assert odin["chosen"] == {"temperature": float(temperature), "epsilon": float(epsilon)}
    assert odin["val_auroc"] == max(max(row) for row in odin["val_auroc_grid"])
    knn = json.loads((version / f"ood_tuning_{knn_name}.json").read_text())
    assert len(knn["val_auroc_grid"]) == 7 and knn["chosen"] == {"k": int(knn_name[3:])}
    for name in (odin_name, knn_name):
        assert (version / f"ood_tuning_{name}.png").stat().st_size > 10_000
    logged = next(version.glob("metrics.csv")).read_text().splitlines()[0]
    assert f"ood_tuning/{odin_name}/val_auroc" in logged and f"ood_tuning/{knn_name}/k" in logged

    # the cross-model table reads the run folder
    table = tmp_path / "results" / "ood.md"
    main("lab4", ["report", f"--runs={{'tiny ResNet-20': '{run_dir}'}}", f"--output={table}"])
    text = table.read_text()
    group_row, set_row = (line for line in text.splitlines() if "| msp |" in line)
    for row in (group_row, set_row):
        assert row.startswith(f"| tiny ResNet-20 | {float(rows[0]['id_accuracy']):.4f} | msp |")
    assert group_row.count(" / ") == 2  # near and far: AUROC, then both FPR@95
    assert set_row.count(" / ") == 4 * 3  # five metrics for each of the three OOD sets
    assert (table.parent / "ood_tiny_resnet_20_msp.png").is_file()


def test_odin_search_config_is_a_test_run_that_tunes_odin(ood_folders, tmp_path):
    main(
        "lab4",
        [
            "test",
            f"--config={REPO / 'configs/lab4/ood/odin_search.yaml'}",
            f"--data.data_dir={ood_folders}",
            *TINY_DATA,
            f"--trainer.default_root_dir={tmp_path}",
        ],
    )
    (version,) = tmp_path.glob("version_*")
    (tuning,) = version.glob("ood_tuning_odin_*.json")
    result = json.loads(tuning.read_text())
    assert result["images"] == [4, 16]  # ID val (val_size), Imagenette train (2 × 8 classes)
    assert {r["detector"] for r in read_rows(version)} == {"msp", result["detector"]}
    assert tuning.with_suffix(".png").stat().st_size > 10_000


def tiny_run(ood_folders, tmp_path, detectors, **callback_args):
    """A small CNN, the tiny OOD folders, and a count of the images the network processed."""
    data = OODDataModule(
        data_dir=ood_folders, download=False, val_size=4, fake_size=8, batch_size=4
    )
    network = SimpleCNN((4, 8))
    model = ImageClassifier(network, num_classes=10, normalization=data.normalization)
    processed = []
    network.register_forward_hook(lambda module, inputs, output: processed.append(len(output)))
    callback = OODEvaluation(detectors, **callback_args)
    trainer = L.Trainer(
        accelerator="cpu",
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    return data, network, processed, trainer, model


def test_id_test_set_is_scored_in_the_test_loop_in_one_pass(ood_folders, tmp_path):
    data, network, processed, trainer, model = tiny_run(
        ood_folders, tmp_path, [MaxSoftmax(), Energy(), Mahalanobis()], fit_images=6
    )
    trainer.test(model, data)
    test_images = data.splits["test"]
    ood_images = {name: data.ood_dataset(name, "test").images for name in data.ood_sets}
    # one forward pass per image: 6 training images (fit), the ID test set, the OOD sets
    assert sum(processed) == 6 + len(test_images) + sum(len(x) for x in ood_images.values())
    assert not network.classifier[-1]._forward_hooks  # the capture is gone

    # independent: the former two-pass computation, a second pass over the ID test images
    network.eval()

    @torch.no_grad()
    def features_and_logits(images):
        features = torch.cat(
            [penultimate(network, x) for x in data.preprocessed_batches(images, "cpu")]
        )
        return features, network.classifier[-1](features)

    train = data.splits["train"]
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:6]
    mahalanobis = Mahalanobis().fit(
        features_and_logits(train.images[index])[0], train.targets[index]
    )

    def scores(images):
        features, logits = features_and_logits(images)
        return {
            "msp": max_softmax(logits),
            "energy": energy(logits),
            "mahalanobis": mahalanobis.score_features(features),
        }

    id_scores = scores(test_images.images)
    accuracy = features_and_logits(test_images.images)[1].argmax(dim=1) == test_images.targets
    rows = read_rows(tmp_path)
    assert len(rows) == 3 * 3
    for row in rows:
        ood_scores = scores(ood_images[row["ood_set"]])
        expected = ood_metrics(id_scores[row["detector"]], ood_scores[row["detector"]])
        assert {k: float(row[k]) for k in expected} == pytest.approx(expected, abs=1e-6)
        assert float(row["id_accuracy"]) == pytest.approx(accuracy.float().mean().item())


@pytest.mark.parametrize("limit", [1, 0.5])  # one of the 3 ID test batches either way
def test_a_limited_test_loop_cuts_every_ood_set_to_the_same_share(
    limit, ood_folders, tmp_path, caplog
):
    data, network, processed, trainer, model = tiny_run(
        ood_folders, tmp_path, [MaxSoftmax(), Energy()]
    )
    trainer.limit_test_batches = limit  # as `--trainer.limit_test_batches` sets it
    trainer.test(model, data)
    id_images, batches = len(data.splits["test"]), len(data.test_dataloader())
    assert (id_images, batches) == (10, 3)
    sizes = {name: len(data.ood_dataset(name, "test")) for name in data.ood_sets}
    kept = {name: math.ceil(size / batches) for name, size in sizes.items()}
    assert all(kept[name] < size for name, size in sizes.items())
    rows = read_rows(tmp_path)
    assert {r["ood_set"] for r in rows} == set(sizes) and len(rows) == 2 * len(sizes)
    # the network's forward passes: one ID test batch of 4 images, then each cut OOD set
    assert processed == [4, *kept.values()]
    for name, size in sizes.items():
        assert f"scored {name} test ({kept[name]} images of {size}: the share" in caplog.text


def test_a_misspelt_tuning_set_fails_before_any_work(ood_folders, tmp_path):
    data, _, processed, trainer, model = tiny_run(
        ood_folders, tmp_path, [ODIN(temperatures=[1, 10])], tune_on="imagenet"
    )
    with pytest.raises(ValueError) as error:
        trainer.test(model, data)
    message = str(error.value)
    assert "\n" not in message and "'imagenet'" in message
    assert "['imagenette', 'mnist', 'fake']" in message
    assert processed == []


@pytest.mark.parametrize(
    "option", ["fit_images=0", "tune_images=-5", "every_n_val_epochs=0", "split=train"]
)
def test_invalid_evaluation_settings_are_rejected_when_the_config_is_parsed(option):
    with pytest.raises(SystemExit) as done:
        main(
            "lab4",
            [
                "test",
                f"--config={REPO / 'configs/lab4/ood/resnet20_pretrained.yaml'}",
                f"--trainer.callbacks.init_args.{option}",
                "--print_config",
            ],
        )
    assert option.split("=")[0] in str(done.value.code)  # the one-line message


def test_ood_metrics_on_validation_splits_every_n_epochs(ood_folders, tmp_path):
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
    assert (
        "ood_val/imagenette/msp/auroc" in header and "ood_val/fake/msp/fpr95_ood_caught" in header
    )
    assert "ood_val/mnist/odin_T" in header  # tuned on the validation pair, then scored
    assert not list(tmp_path.rglob("ood_metrics.csv"))  # files are written at test end only
    assert not model.model.classifier[-1]._forward_hooks


class SpawnableOODDataModule(OODDataModule):
    """``ddp_spawn`` pickles the DataModule; its source constructors (lambdas) are only needed
    in ``__init__``."""

    def __getstate__(self) -> dict:
        return {key: value for key, value in vars(self).items() if key != "sources"}


def test_under_ddp_each_process_scores_its_shard_and_the_metrics_cover_all(ood_folders, tmp_path):
    rows = {}
    for devices, strategy in ((1, "auto"), (2, "ddp_spawn")):
        data = SpawnableOODDataModule(
            data_dir=ood_folders, download=False, val_size=4, fake_size=8, batch_size=4
        )
        torch.manual_seed(0)
        model = ImageClassifier(SimpleCNN((4, 8)), num_classes=10, normalization=data.normalization)
        trainer = L.Trainer(
            accelerator="cpu",
            devices=devices,
            strategy=strategy,
            callbacks=[OODEvaluation([MaxSoftmax(), Mahalanobis()], fit_images=6)],
            logger=False,
            enable_progress_bar=False,
            default_root_dir=tmp_path / strategy,
        )
        trainer.test(model, data)
        rows[devices] = read_rows(tmp_path / strategy)
    assert len(rows[2]) == len(rows[1]) == 3 * 2
    for one, two in zip(rows[1], rows[2], strict=True):
        assert (one["ood_set"], one["detector"]) == (two["ood_set"], two["detector"])
        for key in (*OOD_METRICS, "id_accuracy"):
            assert float(two[key]) == pytest.approx(float(one[key]), abs=1e-6), key
