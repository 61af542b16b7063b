"""Transfer learning: Imagenette data, fine-tuning strategies, the linear-SVM baseline."""

import json

import pytest
import torch
from torch import nn

from common.cli import main
from common.data import FakeDataModule, ImagenetteDataModule
from common.data.datasets import IMAGENETTE_CLASSES
from common.models import CifarResNet
from lab1.finetune import STRATEGIES, FineTuneClassifier, trainable_backbone
from lab1.svm_baseline import fit_svm
from tests.conftest import REPO, tiny_trainer, write_image_folder

WNIDS = list(IMAGENETTE_CLASSES)


def test_imagenette_resizes_once_excludes_by_name_and_reads_readable_names(tmp_path):
    for split in ("train", "val"):
        write_image_folder(tmp_path / "imagenette" / split, WNIDS, per_class=3, shape=(3, 40, 52))
    data = ImagenetteDataModule(
        data_dir=str(tmp_path), image_size=16, exclude=["English springer", "n03417042"], val_size=4
    )
    data.prepare_data()
    data.setup()
    assert (tmp_path / "imagenette" / "train.16px.uint8.pt").is_file()
    assert data.splits["test"].images.shape == (8 * 3, 3, 16, 16)
    assert data.num_classes == 8 and "English springer" not in data.class_names
    assert data.class_names[0] == "tench" and data.imagenet_indices[-1] == 701
    assert set(data.splits["test"].targets.tolist()) == set(range(8))
    with pytest.raises(ValueError, match="not Imagenette classes: \\['garbage trucks'\\]"):
        ImagenetteDataModule(exclude=["garbage trucks"])


def test_imagenette_class_table_matches_the_shared_classes_tsv(real_data_dir):
    rows = (real_data_dir / "imagenette" / "classes.tsv").read_text().splitlines()[1:]
    table = {wnid: (name, int(index)) for wnid, name, index in (r.split("\t") for r in rows)}
    assert table == IMAGENETTE_CLASSES


def tiny_resnet() -> CifarResNet:
    return CifarResNet((1, 1, 1), widths=(4, 8, 8), num_classes=10, mean=[0.5] * 3, std=[0.25] * 3)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_step_changes_only_what_the_strategy_trains(strategy):
    torch.manual_seed(0)
    module = FineTuneClassifier(
        tiny_resnet(),
        num_classes=5,
        strategy=strategy,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
    )
    module.train()
    model = module.model
    assert model.classifier[-1].out_features == 5
    trained = {id(p) for m in trainable_backbone(model.features, strategy) for p in m.parameters()}
    trained |= {id(p) for p in model.classifier.parameters()}
    frozen_bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    frozen_bn = [m for m in frozen_bn if all(id(p) not in trained for p in m.parameters())]
    assert all(not m.training for m in frozen_bn)  # frozen parts stay in eval mode
    before = {name: t.clone() for name, t in model.state_dict().items()}
    optimizer = module.optimizer(module.parameter_groups())
    images, targets = torch.rand(8, 3, 16, 16), torch.randint(0, 5, (8,))
    nn.functional.cross_entropy(module(images), targets).backward()
    optimizer.step()
    after = model.state_dict()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], after[name])
        assert changed == (id(param) in trained), name
    for module_name, bn in model.named_modules():
        if bn in frozen_bn:  # running statistics of frozen batch norms do not drift
            assert torch.equal(before[f"{module_name}.running_mean"], bn.running_mean)
    expected = {"head": 0, "last_block": 1, "all_but_stem": 3, "full": 7}[strategy]
    assert len(trainable_backbone(model.features, strategy)) == expected


def test_backbone_lr_factor_scales_the_backbone_learning_rate():
    module = FineTuneClassifier(
        tiny_resnet(),
        num_classes=5,
        strategy="last_block",
        backbone_lr_factor=0.1,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
    )
    module.trainer = None
    optimizer = module.configure_optimizers()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.5, 0.05])


def test_fine_tuning_starts_from_a_fit_checkpoint(tmp_path):
    source = tiny_resnet()
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": state}, tmp_path / "source.ckpt")
    module = FineTuneClassifier(
        tiny_resnet(), num_classes=3, checkpoint=str(tmp_path / "source.ckpt"), strategy="head"
    )
    conv = module.model.features.conv1.weight
    assert torch.equal(conv, source.features.conv1.weight)
    other = {"pytorch-lightning_version": "2.6", "state_dict": {"model.other.weight": conv}}
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="does not fit CifarResNet"):
        FineTuneClassifier(tiny_resnet(), num_classes=3, checkpoint=str(tmp_path / "other.ckpt"))


def test_svm_picks_c_on_validation_and_scores_the_test_split():
    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=generator) * 4

    def split(n):
        targets = torch.arange(n) % 3
        return centers[targets] + torch.randn(n, 8, generator=generator), targets

    features = {"train": split(90), "val": split(30), "test": split(30)}
    result = fit_svm(features, [0.01, 1.0], seed=0)
    assert result["test_acc"] > 0.9 and result["C"] in (0.01, 1.0)
    assert result["trainable_params"] == 8 * 3 + 3
    features["test"] = (features["test"][0], (features["test"][1] + 1) % 3)  # wrong labels
    assert fit_svm(features, [1.0], seed=0)["test_acc"] < 0.2


@pytest.mark.parametrize("config", ["svm_baseline.yaml", "svm_baseline_cifar100.yaml"])
def test_baseline_command_runs_on_fake_data(config, tmp_path):
    main(
        "lab1",
        [
            "baseline",
            f"--config={REPO / 'configs/lab1/transfer' / config}",
            "--data=common.data.FakeDataModule",
            "--data.train_size=60",
            "--data.val_size=20",
            "--data.test_size=20",
            "--data.num_classes=3",
            "--C=[1.0]",
            f"--run_dir={tmp_path}",
        ],
    )
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= result["test_acc"] <= 1 and result["trainable_params"] == 64 * 3 + 3
    assert (tmp_path / "features.pt").is_file()


def test_frozen_batch_norm_statistics_survive_a_lightning_fit():
    """Lightning restores saved module modes around validation; frozen BN must stay in eval."""
    source = tiny_resnet()
    module = FineTuneClassifier(tiny_resnet(), num_classes=3, strategy="last_block")
    module.model.features.load_state_dict(source.features.state_dict())
    tiny_trainer().fit(module, FakeDataModule(image_shape=(3, 16, 16), num_classes=3, val_size=32))
    features = module.model.features
    assert torch.equal(features.bn1.running_mean, source.features.bn1.running_mean)
    assert torch.equal(
        features.layer2[0].bn1.running_var, source.features.layer2[0].bn1.running_var
    )
    assert not torch.equal(
        features.layer3[0].bn1.running_mean, source.features.layer3[0].bn1.running_mean
    )
