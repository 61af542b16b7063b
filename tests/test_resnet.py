import os
from pathlib import Path

import pytest
import torch

from common.models.pretrained import CheckpointMismatchError, load_weights, resnet20
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
    model = resnet20("akamaster", str(AKAMASTER))
    normalize = model.features.normalize
    assert torch.allclose(normalize.mean, torch.tensor([0.485, 0.456, 0.406]))
    assert isinstance(model.features.layer2[0].shortcut, ZeroPadShortcut)
