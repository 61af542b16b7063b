"""Class Activation Maps: the CAM identity, overlays, confidence metrics, callback and command."""

import json

import pytest
import torch
from torch import nn

from common.cam import class_activation_maps, grad_cam, overlay, upsample
from common.cli import main
from common.metrics import explanation_confidence
from common.models import CifarResNet, TorchvisionResNet
from lab4.models import SimpleCNN
from tests.conftest import REPO, write_image_folder


@pytest.mark.parametrize(
    "model",
    [
        CifarResNet((1, 1, 1), widths=(4, 8, 8), num_classes=5, mean=[0.5] * 3, std=[0.25] * 3),
        TorchvisionResNet("resnet18", num_classes=7),
        SimpleCNN((4, 8), num_classes=5, mean=[0.5] * 3, std=[0.25] * 3),
    ],
    ids=["CifarResNet", "TorchvisionResNet", "SimpleCNN"],
)
def test_spatial_mean_of_the_cam_is_the_logit_minus_the_bias(model):
    torch.manual_seed(0)
    model.eval()
    images = torch.rand(3, 3, 64, 64)
    classes = torch.tensor([0, 2, 4])
    cams, logits = class_activation_maps(model, images, classes)
    bias = model.classifier[-1].bias[classes]
    expected = logits[torch.arange(3), classes] - bias
    torch.testing.assert_close(cams.mean(dim=(1, 2)), expected, atol=1e-4, rtol=1e-4)
    default_cams, _ = class_activation_maps(model, images)  # predicted class by default
    predicted = logits.argmax(dim=1)
    torch.testing.assert_close(default_cams, class_activation_maps(model, images, predicted)[0])


def test_grad_cam_is_the_positive_part_of_cam_scaled_for_a_gap_linear_head():
    torch.manual_seed(0)
    model = CifarResNet((1, 1, 1), widths=(4, 8, 8), num_classes=5, mean=[0.5] * 3, std=[0.25] * 3)
    model.eval()
    images, classes = torch.rand(3, 3, 32, 32), torch.tensor([1, 3, 4])
    cams, logits = class_activation_maps(model, images, classes)
    with torch.inference_mode():  # as in Lightning's test loop
        gradcams, gradcam_logits = grad_cam(model, images, classes)
    h, w = cams.shape[-2:]
    torch.testing.assert_close(gradcams, cams.clamp_min(0) / (h * w), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(gradcam_logits, logits)
    assert all(p.grad is None for p in model.parameters())


def test_cam_rejects_networks_without_global_average_pooling():
    model = nn.Sequential()
    model.features = nn.Conv2d(3, 4, 3)
    model.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ValueError, match="global average pooling"):
        class_activation_maps(model, torch.rand(1, 3, 8, 8))


def test_upsampled_maps_and_overlays_have_the_image_size_and_range():
    cams = torch.randn(2, 4, 4) * 10
    saliency = upsample(cams, (32, 32))
    assert saliency.shape == (2, 32, 32)
    assert saliency.amin() == 0 and saliency.amax() == pytest.approx(1)
    blended = overlay(torch.rand(2, 3, 32, 32), saliency)
    assert blended.shape == (2, 3, 32, 32) and blended.min() >= 0 and blended.max() <= 1
    assert overlay(torch.rand(2, 1, 32, 32), saliency).shape == (2, 3, 32, 32)


def test_average_drop_and_increase_in_confidence_on_a_hand_made_model():
    class Brightness(nn.Module):  # class 0 logit = 4 * mean brightness, class 1 logit = 0
        def forward(self, images):
            return torch.stack([4 * images.mean(dim=(1, 2, 3)), torch.zeros(len(images))], 1)

    images = torch.ones(2, 3, 4, 4)
    classes = torch.tensor([0, 1])
    keep_all = explanation_confidence(Brightness(), images, torch.ones(2, 4, 4), classes)
    assert keep_all == {"average_drop": 0.0, "increase_in_confidence": 0.0}
    halve = explanation_confidence(Brightness(), images, torch.full((2, 4, 4), 0.5), classes)
    p0_before = torch.tensor([4.0, 0.0]).softmax(0)[0]
    p0_after = torch.tensor([2.0, 0.0]).softmax(0)[0]  # class 0 loses, class 1 gains
    assert halve["average_drop"] == pytest.approx(((p0_before - p0_after) / p0_before / 2).item())
    assert halve["increase_in_confidence"] == 0.5


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_cam_export_writes_the_grid_and_logs_the_metrics(method, tmp_path):
    main(
        "lab1",
        [
            "test",
            f"--config={REPO / 'configs/lab1/resnet20_pretrained.yaml'}",
            "--trainer.callbacks+=CAMExport",
            "--trainer.callbacks.num_images=6",
            f"--trainer.callbacks.method={method}",
            "--trainer.limit_test_batches=1",
            f"--trainer.default_root_dir={tmp_path}",
            "--data=common.data.FakeDataModule",
            "--data.test_size=40",
            "--data.val_size=32",
        ],
    )
    (version,) = tmp_path.glob("version_*")
    assert (version / "cam_test.png").stat().st_size > 10_000
    header = (version / "metrics.csv").read_text().splitlines()[0]
    assert "cam/test_average_drop" in header and "cam/test_increase_in_confidence" in header


def test_cam_command_on_an_image_folder_and_its_errors(tmp_path, capsys):
    write_image_folder(tmp_path / "images", ["a", "b"], per_class=3, shape=(3, 40, 48))
    config = REPO / "configs/lab1/cam/cifar10_resnet20.yaml"
    output = tmp_path / "cam.png"
    args = ["cam", f"--config={config}", f"--output={output}"]
    main("lab1", [*args, f"--images=[{tmp_path / 'images'}]", "--max_images=4"])
    assert output.stat().st_size > 10_000
    assert json.loads(output.with_suffix(".json").read_text())["images"] == 4
    with pytest.raises(SystemExit, match="image .*nowhere.png does not exist"):
        main("lab1", [*args, f"--images=[{tmp_path / 'nowhere.png'}]"])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(SystemExit, match="notes.png is not a readable image"):
        main("lab1", [*args, f"--images=[{tmp_path / 'notes.png'}]"])


def test_imagenet_cam_config_says_how_to_get_the_weights_offline(monkeypatch):
    monkeypatch.setattr(
        "torchvision.models._api.WeightsEnum.get_state_dict",
        lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no internet")),
    )
    with pytest.raises(SystemExit, match="cannot download resnet18 weights .* pass weights_path"):
        main("lab1", ["cam", f"--config={REPO / 'configs/lab1/cam/imagenette_resnet18.yaml'}"])
