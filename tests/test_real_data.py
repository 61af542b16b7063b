"""A few checks on real data slices (``make data`` unpacks them; CI always has them)."""

import lightning as L
import pytest
import torch

from common.classifier import ImageClassifier
from common.data import CIFAR10DataModule, ImagenetteDataModule, MNISTDataModule
from common.features import extract_features
from common.models.pretrained import ResNet20
from lab1.models import ResidualMLP
from lab1.svm_baseline import fit_svm


@pytest.mark.slow
def test_residual_mlp_learns_real_mnist_in_a_hundred_steps(real_data_dir, tmp_path):
    L.seed_everything(0)
    data = MNISTDataModule(data_dir=str(real_data_dir), batch_size=128)
    model = ImageClassifier(
        ResidualMLP(width=16, depth=8),
        10,
        normalization=data.normalization,
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
    )
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=100,
        limit_val_batches=10,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert trainer.callback_metrics["val/acc"] > 0.85


def test_real_cifar10_decodes_to_the_documented_statistics(real_data_dir):
    if not (real_data_dir / "cifar10" / "train").is_dir():
        pytest.skip("CIFAR-10 not unpacked: run `make data`")
    data = CIFAR10DataModule(data_dir=str(real_data_dir), val_size=5000)
    data.setup()
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [45000, 5000, 10000]
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    train = data.load("train")
    assert torch.bincount(train.targets).tolist() == [5000] * 10
    pixels = train.images[::10].float() / 255  # shared/data/README: every 10th training image
    assert torch.allclose(pixels.mean((0, 2, 3)), torch.tensor([0.4892, 0.4813, 0.4467]), atol=2e-3)


def test_pretrained_cifar10_features_transfer_to_real_imagenette_with_a_linear_svm(real_data_dir):
    """A slice of the transfer baseline: the full run reaches 0.636 (README)."""
    data = ImagenetteDataModule(data_dir=str(real_data_dir), image_size=32, val_size=300)
    data.setup()
    model = ResNet20("akamaster", "data/weights/resnet20-12fca82f.th")
    features = {}
    for split, n in (("train", 1500), ("val", 300), ("test", 1000)):
        dataset = data.splits[split]
        index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n]
        batches = data.preprocessed_batches(dataset.images[index], "cpu")
        features[split] = (extract_features(model, batches), dataset.targets[index])
    result = fit_svm(features, [1.0], seed=0)
    assert result["test_acc"] > 0.45  # chance: 0.1
