"""``python -m lab4 saliency``: input gradients against per-image autograd, the image scaling, and
the command end to end on tiny checkpoints and FakeData."""

import logging

import pytest
import torch
from torch.nn import functional as F

import lab4.saliency
from common.cli import main
from lab4.models import SimpleCNN
from lab4.saliency import gradient_image, input_gradients
from tests.conftest import REPO

CONFIG = REPO / "configs/lab4/robustness/saliency.yaml"
WIDTHS = [4, 8]


def tiny_cnn(seed: int) -> SimpleCNN:
    torch.manual_seed(seed)
    model = SimpleCNN(widths=WIDTHS, mean=[0.5] * 3, std=[0.25] * 3)
    with torch.no_grad():  # BatchNorm statistics unlike a batch's, so train mode would differ
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def test_input_gradients_equal_per_image_autograd_in_eval_mode():
    model = tiny_cnn(0).train()
    images, labels = torch.rand(5, 3, 16, 16), torch.tensor([0, 3, 9, 3, 1])
    with torch.inference_mode():  # as inside Lightning's test loop
        gradients = input_gradients(model, images, labels)
    assert model.training and all(m.training for m in model.modules())  # modes restored
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    for i in range(len(images)):
        image = images[i : i + 1].clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(F.cross_entropy(model(image), labels[i : i + 1]), image)
        torch.testing.assert_close(gradients[i : i + 1], expected, rtol=1e-4, atol=1e-7)


def test_gradient_image_maps_zero_to_grey_and_clips_at_three_sigma():
    gradient = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0, 0.0]).view(1, 1, 2, 3)
    sigma = gradient.std().item()
    scaled = gradient_image(torch.cat([gradient, 10 * gradient]))
    expected = (0.5 + gradient / (6 * sigma)).clamp(0, 1)
    torch.testing.assert_close(scaled, torch.cat([expected, expected]))  # per-image scale
    assert scaled[0, 0, 0, 2] == 0.5 and scaled.min() > 0 and scaled.max() < 1
    far = gradient_image(torch.tensor([0.0] * 98 + [100.0, -100.0]).view(1, 1, 10, 10))
    assert far.flatten()[-2:].tolist() == [1.0, 0.0]  # beyond ±3σ: the extremes
    assert gradient_image(torch.zeros(1, 3, 2, 2)).eq(0.5).all()  # no NaN without a gradient


def save_checkpoint(path, model: torch.nn.Module, **extra) -> str:
    """A Lightning-like checkpoint of a module that keeps ``model`` in ``.model``."""
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"pytorch-lightning_version": "2.5.0", "state_dict": {**state, **extra}}, path)
    return str(path)


def saliency(tmp_path, models: dict, *extra: str) -> None:
    main(
        "lab4",
        [
            "saliency",
            f"--config={CONFIG}",
            f"--models={models}",
            f"--model.init_args.widths={WIDTHS}",
            "--data=common.data.FakeDataModule",
            "--data.test_size=40",
            "--data.train_size=16",
            "--data.val_size=8",
            "--device=cpu",
            "--logger=false",
            f"--run_dir={tmp_path / 'run'}",
            *extra,
        ],
    )


def test_the_command_draws_every_model_and_skips_a_missing_checkpoint(
    tmp_path, monkeypatch, caplog
):
    drawn = {}
    plot = lab4.saliency.plot_saliency_grid

    def keep(images, maps, names, path, title):
        drawn.update(images=images, maps=maps, names=names)
        return plot(images, maps, names, path, title)

    monkeypatch.setattr(lab4.saliency, "plot_saliency_grid", keep)
    models = {
        "plain": save_checkpoint(tmp_path / "plain.ckpt", tiny_cnn(1)),
        "not trained yet": str(tmp_path / "missing.ckpt"),
        # a JARN-like checkpoint: its discriminator's weights are not the network's
        "robust": save_checkpoint(
            tmp_path / "robust.ckpt", tiny_cnn(2), **{"discriminator.w": torch.ones(2)}
        ),
    }
    output = tmp_path / "figures/saliency.png"
    with caplog.at_level(logging.WARNING, logger="lab4.saliency"):
        saliency(tmp_path, models, "--num_images=6", f"--output={output}")
    assert output.read_bytes()[:4] == b"\x89PNG" and output.stat().st_size > 10_000
    assert not (tmp_path / "run/saliency.png").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"saliency: not trained yet: checkpoint {models['not trained yet']} "
                        "does not exist yet; skipped"]  # fmt: skip
    assert list(drawn["maps"]) == ["plain", "robust"]
    assert drawn["images"].shape == (6, 3, 32, 32) and len(drawn["names"]) == 6
    assert sorted(drawn["names"]) == [f"class_{i}" for i in range(6)]  # one per class
    plain, robust = drawn["maps"].values()
    assert plain.shape == robust.shape == drawn["images"].shape
    assert plain.min() >= 0 and plain.max() <= 1 and not torch.allclose(plain, robust)


def test_without_output_the_figure_goes_into_the_run_folder(tmp_path):
    saliency(tmp_path, {"plain": save_checkpoint(tmp_path / "a.ckpt", tiny_cnn(1))})
    assert (tmp_path / "run/saliency.png").stat().st_size > 10_000


def test_no_checkpoint_at_all_and_a_checkpoint_of_another_network_stop_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as error:
        saliency(tmp_path, {"a": str(tmp_path / "none.ckpt")})
    assert "none of the --models checkpoints exists" in str(error.value)
    other = SimpleCNN(widths=[4, 4, 4])
    with pytest.raises(SystemExit) as error:
        saliency(tmp_path, {"a": save_checkpoint(tmp_path / "other.ckpt", other)})
    assert "does not fit" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run/saliency.png").exists()


def test_a_row_of_another_network_is_drawn_with_its_own_network(tmp_path):
    other = SimpleCNN(widths=[4, 4, 4], mean=[0.5] * 3, std=[0.25] * 3)
    models = {
        "plain": save_checkpoint(tmp_path / "plain.ckpt", tiny_cnn(1)),
        "deeper": save_checkpoint(tmp_path / "deeper.ckpt", other),
    }
    network = {"class_path": "lab4.models.SimpleCNN", "init_args": {"widths": [4, 4, 4]}}
    saliency(tmp_path, models, f"--networks={{'deeper': {network}}}")
    assert (tmp_path / "run/saliency.png").stat().st_size > 10_000
