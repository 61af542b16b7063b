import os
from pathlib import Path

import pytest
import torch

from common.models.pretrained import CheckpointMismatchError, ResNet20, load_weights
from common.models.resnet import BasicBlock, CifarResNet, ZeroPadShortcut
from tests.conftest import REPO

AKAMASTER = Path(os.environ.get("DLA_DATA_ARCHIVES", REPO.parent / "shared" / "data"))
AKAMASTER = AKAMASTER / "weights" / "resnet20-12fca82f.th"


@pytest.mark.parametrize("depths", [(2, 2), (3, 3, 3), (5, 5, 5)])
def test_shapes_and_feature_maps(depths):
    widths = (16, 32, 64)[: len(depths)]
    model = CifarResNet(depths, widths)
    images = torch.rand(2, 3, 32, 32)
    side = 32 // 2 ** (len(depths) - 1)
    assert model.features(images).shape == (2, widths[-1], side, side)
    assert model(images).shape == (2, 10)


def test_resnet20_has_the_papers_parameter_count():
    count = sum(p.numel() for p in CifarResNet((3, 3, 3), shortcut="zero_pad").parameters())
    assert count == 269_722  # 0.27 M, the paper's ResNet-20


def test_plain_and_residual_differ_only_by_the_skip():
    torch.manual_seed(0)
    plain = CifarResNet((3, 3, 3), skip=False, shortcut="zero_pad").eval()
    torch.manual_seed(0)
    residual = CifarResNet((3, 3, 3), skip=True, shortcut="zero_pad").eval()
    assert plain.state_dict().keys() == residual.state_dict().keys()
    images = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(plain(images), residual(images))
    for block in residual.modules():
        if isinstance(block, BasicBlock):
            block.skip = False
    assert torch.equal(plain(images), residual(images))
    projection = CifarResNet((3, 3, 3), skip=True).state_dict().keys() - plain.state_dict().keys()
    assert projection and all(".shortcut." in key for key in projection)


def test_zero_pad_shortcut_subsamples_and_pads_channels():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def akamaster_state(model: CifarResNet) -> dict[str, torch.Tensor]:
    """``model``'s weights written the way akamaster's checkpoint names them."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("features.normalize") or key.endswith("num_batches_tracked"):
            continue
        state["module." + key.removeprefix("features.").removeprefix("classifier.")] = value
    return state


def test_akamaster_format_loads_every_tensor_into_its_place():
    source = CifarResNet((3, 3, 3), shortcut="zero_pad")
    model = CifarResNet((3, 3, 3), shortcut="zero_pad")
    load_weights(model, akamaster_state(source), "akamaster")
    for key, value in akamaster_state(source).items():
        ours = "classifier." + key[7:] if key.startswith("module.linear") else "features." + key[7:]
        assert torch.equal(model.state_dict()[ours], value)


def test_mismatched_checkpoint_names_the_keys():
    state = akamaster_state(CifarResNet((3, 3, 3), shortcut="zero_pad"))
    state.pop("module.linear.bias")
    state["module.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r"missing \['classifier.linear.bias'\]"):
        load_weights(CifarResNet((3, 3, 3), shortcut="zero_pad"), state, "akamaster")


@pytest.mark.skipif(not AKAMASTER.is_file(), reason="no akamaster checkpoint in DLA_DATA_ARCHIVES")
def test_real_akamaster_checkpoint_loads_with_imagenet_statistics():
    model = ResNet20("akamaster", str(AKAMASTER))
    normalize = model.features.normalize
    assert torch.allclose(normalize.mean, torch.tensor([0.485, 0.456, 0.406]))
    assert isinstance(model.features.layer2[0].shortcut, ZeroPadShortcut)


class AkamasterResNet20(torch.nn.Module):
    """An independent ResNet-20, written from the akamaster repository's description."""

    class Block(torch.nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(cout)
            self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(cout)
            self.pad = cout - cin

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            short = x
            if self.pad:
                short = torch.nn.functional.pad(
                    x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad // 2)
                )
            return torch.relu(out + short)

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        cin = 16
        for i, cout in enumerate((16, 32, 64)):
            blocks = [
                self.Block(cin if j == 0 else cout, cout, 2 if i and not j else 1) for j in range(3)
            ]
            setattr(self, f"layer{i + 1}", torch.nn.Sequential(*blocks))
            cin = cout
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(x.mean((2, 3)))


@pytest.mark.skipif(not AKAMASTER.is_file(), reason="no akamaster checkpoint in DLA_DATA_ARCHIVES")
def test_pretrained_resnet20_classifies_real_cifar10_like_an_independent_implementation(
    real_data_dir,
):
    from PIL import Image
    from torchvision.transforms import v2

    from common.data import CIFAR10DataModule

    if not (real_data_dir / "cifar10" / "test").is_dir():
        pytest.skip("CIFAR-10 not unpacked: run `make data`")
    data = CIFAR10DataModule(data_dir=str(real_data_dir))
    data.setup()
    # every 20th file (the test split is served in a mixed order: pick the files by identity)
    images, targets = data.splits["test"].by_ids(torch.arange(0, 10_000, 20))
    ours = ResNet20("akamaster", str(AKAMASTER)).eval()
    with torch.inference_mode():
        our_predictions = ours(images.float() / 255).argmax(1)

    # the independent path: PIL decoding, torchvision transforms, akamaster's own module names
    reference = AkamasterResNet20().eval()
    state = torch.load(AKAMASTER, map_location="cpu", weights_only=True)["state_dict"]
    reference.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    files = sorted((real_data_dir / "cifar10" / "test").glob("*/*.jpg"))[::20]
    pixels = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    with torch.inference_mode():
        reference_predictions = reference(pixels).argmax(1)

    assert torch.equal(our_predictions, reference_predictions)
    accuracy = (our_predictions == targets).float().mean().item()
    assert 0.76 < accuracy < 0.86  # 81.0 % on the full JPEG test set; 500 images here
