"""The autoencoder detector: training loop wiring and the reconstruction-error score."""

import torch

from common.cli import main
from common.ood import ScoredBatch
from lab4.detectors import ReconstructionError
from lab4.models import ConvAutoencoder, reconstruction_error
from tests.conftest import REPO


def test_autoencoder_reconstructs_images_of_their_shape_in_range():
    autoencoder = ConvAutoencoder((8, 16)).eval()
    images = torch.rand(3, 3, 32, 32)
    output = autoencoder(images)
    assert output.shape == images.shape and output.min() >= 0 and output.max() <= 1
    expected = ((output - images) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(reconstruction_error(autoencoder, images), expected)


def test_fit_checkpoint_feeds_the_reconstruction_error_detector(tmp_path):
    main(
        "lab4",
        [
            "fit",
            f"--config={REPO / 'configs/lab4/autoencoder_cifar10.yaml'}",
            "--model.init_args.model.init_args.channels=[8, 16]",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--data=common.data.FakeDataModule",
            "--data.val_size=32",
            "--data.batch_size=16",
        ],
    )
    detector = ReconstructionError(str(tmp_path / "checkpoints" / "best.ckpt"), channels=[8, 16])
    images = torch.rand(4, 3, 32, 32)
    batch = ScoredBatch(model=None, images=images, features=None, logits=None)
    expected = -reconstruction_error(detector.autoencoder, images)
    torch.testing.assert_close(detector.score(batch), expected)
