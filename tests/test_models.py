import pytest
import torch

from common.models import Normalize, find_normalize
from lab1.models import MLP, MLPBlock, ResidualMLP


@pytest.mark.parametrize("depth, per_block", [(2, 1), (8, 2), (32, 2)])
def test_shapes_and_features(depth, per_block):
    model = ResidualMLP((1, 28, 28), 10, width=16, depth=depth, layers_per_block=per_block)
    images = torch.rand(4, 1, 28, 28)
    assert model.features(images).shape == (4, 16)
    assert model(images).shape == (4, 10)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linear) == depth + 2  # stem + hidden layers + classifier


def test_plain_and_residual_differ_only_by_the_skip():
    torch.manual_seed(0)
    plain = MLP((1, 28, 28), 10, width=16, depth=8, layers_per_block=2, mean=[0.5], std=[0.5])
    torch.manual_seed(0)
    residual = ResidualMLP((1, 28, 28), 10, width=16, depth=8, mean=[0.5], std=[0.5])
    plain_state, residual_state = plain.state_dict(), residual.state_dict()
    assert plain_state.keys() == residual_state.keys()
    assert all(torch.equal(plain_state[k], residual_state[k]) for k in plain_state)
    images = torch.rand(3, 1, 28, 28)
    assert not torch.allclose(plain(images), residual(images))
    for block in residual.modules():
        if isinstance(block, MLPBlock):
            block.skip = False
    assert torch.equal(plain(images), residual(images))


def test_residual_block_adds_its_input():
    block = MLPBlock([5, 5, 5], skip=True)
    x = torch.randn(4, 5)
    first, second = block.body[1], block.body[3]
    expected = second(torch.relu(first(torch.relu(x)))) + x
    assert torch.allclose(block(x), expected)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="multiple of layers_per_block"):
        ResidualMLP(depth=3, layers_per_block=2)
    with pytest.raises(ValueError, match="equal input and output"):
        MLP(widths=[16, 8, 8], layers_per_block=2, skip=True)


def test_widths_build_a_plain_mlp_of_those_sizes():
    model = MLP((1, 28, 28), 10, widths=[64, 32, 16])
    sizes = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [64, 32, 16, 10]


def test_normalize_is_the_models_first_layer_and_uses_given_statistics():
    model = MLP((1, 28, 28), 10, mean=[0.25], std=[0.5])
    normalize = find_normalize(model)
    assert model.features[0] is normalize and bool(normalize.is_set)
    assert torch.allclose(normalize(torch.full((1, 1, 2, 2), 0.75)), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="3 values"):
        Normalize(3, mean=[0.5], std=[0.5])


def test_flip_test_time_augmentation_averages_the_logits_of_the_image_and_its_mirror():
    from common.classifier import ImageClassifier
    from common.models import CifarResNet

    torch.manual_seed(0)
    network = CifarResNet((1, 1, 1), widths=(4, 8, 8), num_classes=3).eval()
    find_normalize(network).set_statistics((0.5,) * 3, (0.25,) * 3)
    images, targets = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    plain = ImageClassifier(network, 3)
    tta = ImageClassifier(network, 3, test_time_flip=True)

    class Recorder:  # what _shared_step updates
        def __init__(self, module):
            self.logits = None
            module.accuracy["test_acc"].update = lambda logits, _: setattr(self, "logits", logits)

    seen = Recorder(tta)
    with torch.no_grad():
        tta._shared_step((images, targets), 0, "test")
        expected = (network(images) + network(images.flip(-1))) / 2
    assert torch.allclose(seen.logits, expected, atol=1e-6)
    assert plain.memory_format == torch.channels_last  # "auto": a network with convolutions
    mlp = ImageClassifier(MLP((1, 4, 4), 3, width=4, depth=2), 3, normalization=((0.5,), (0.3,)))
    assert mlp.memory_format == torch.contiguous_format
