"""Lab 4's app: the explorer's answers against independent computations, then the page itself
in headless Chromium (tiny network, tiny image folders)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch.nn import functional as F
from torchvision.io import write_png

from common.app import serve
from common.cli import main
from common.data.datasets import IMAGENETTE_CLASSES
from lab4.app import build_app
from lab4.app import main as app_main
from lab4.data import OODDataModule
from lab4.detectors import KNN, MaxSoftmax
from lab4.explorer import Explorer
from lab4.models import SimpleCNN
from tests.browser import browser, free_port, page  # noqa: F401  (fixtures)
from tests.conftest import REPO, write_image_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> OODDataModule:
    root = tmp_path_factory.mktemp("data")
    for split, n in (("train", 3), ("test", 1)):
        write_image_folder(
            root / "cifar10" / split, list(OODDataModule.default_classes), n, (3, 32, 32)
        )
    for split in ("train", "val"):
        write_image_folder(root / "imagenette" / split, list(IMAGENETTE_CLASSES), 1, (3, 40, 52))
    data = OODDataModule(
        data_dir=str(root), batch_size=8, val_size=10, ood_sets=["imagenette"], download=False
    )
    data.prepare_data()
    data.setup("test")
    return data


@pytest.fixture(scope="module")
def explorer(data) -> Explorer:
    torch.manual_seed(0)
    network = SimpleCNN(widths=[4, 8], mean=[0.5] * 3, std=[0.25] * 3)
    detectors = [MaxSoftmax(), KNN(ks=[1, 2])]
    return Explorer(network, data, detectors, fit_images=20, tune_images=10, threshold_images=10)


def test_thresholds_keep_the_asked_share_of_id_validation_images(explorer, data):
    scores = explorer.scores(data.splits["val"].images[:10])
    assert set(explorer.thresholds) == {d.name for d in explorer.detectors}  # knn: tuned name
    for name, threshold in explorer.thresholds.items():
        kept = (scores[name] >= threshold).float().mean().item()
        assert kept >= 0.95 and (scores[name] >= threshold).sum() == 10  # 95 % of 10: all
        assert (scores[name] < threshold).sum() == 0 and threshold in scores[name]


def test_look_gives_the_networks_own_top5_and_msp_verdict(explorer, data):
    image, label = explorer.test_image(4)
    assert label == int(data.splits["test"].targets[4])
    seen = explorer.look(image)
    with torch.no_grad():
        probabilities = explorer.network(image[None].float() / 255).softmax(dim=1)[0]
    top = probabilities.topk(5)
    assert list(seen.top5) == [data.class_names[c] for c in top.indices.tolist()]
    assert list(seen.top5.values()) == pytest.approx(top.values.tolist(), abs=1e-5)
    assert seen.predicted == int(probabilities.argmax())
    msp = next(v for v in seen.verdicts if v.detector == "msp")
    assert msp.score == pytest.approx(probabilities.max().item(), abs=1e-5)
    assert msp.in_distribution == (msp.score >= explorer.thresholds["msp"])
    assert seen.cam.shape == (3, 32, 32) and 0 <= seen.cam.min() <= seen.cam.max() <= 1


def test_an_fgsm_attack_equals_a_hand_computed_step(explorer):
    image, label = explorer.test_image(0)
    radius = 8 / 255
    hit = explorer.attack(image, label, "fgsm", radius)
    inputs = (image[None].float() / 255).requires_grad_(True)
    loss = F.cross_entropy(explorer.network(inputs), torch.tensor([label]))
    (gradient,) = torch.autograd.grad(loss, inputs)
    expected = (inputs + radius * gradient.sign()).clamp(0, 1).detach()[0]
    torch.testing.assert_close(hit.adversarial, expected, atol=1e-6, rtol=0)
    assert hit.steps in (0, 1) and hit.linf <= radius + 1e-6
    with torch.no_grad():
        after = explorer.network(expected[None]).argmax().item()
    assert hit.predicted == after and hit.success == (after != label)


def test_bad_requests_fail_in_one_line(explorer, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    for call, message in (
        (lambda: explorer.read_image(text), "notes.txt: not a readable image"),
        (lambda: explorer.read_image(tmp_path / "gone.png"), "gone.png: no such image file"),
        (lambda: explorer.test_image(99), "test image index 99 is not in [0, 9]"),
        (lambda: explorer.attack(*explorer.test_image(0), "bim", 0.1), "unknown attack 'bim'"),
    ):
        with pytest.raises(ValueError) as error:
            call()
        assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("radius", [float("nan"), float("inf"), -8 / 255, 0.0, 300 / 255])
def test_a_radius_outside_the_pixel_range_is_refused_not_reported_as_a_success(explorer, radius):
    with pytest.raises(ValueError, match=r"radius must be in \(0, 1\] \(pixel units"):
        explorer.attack(*explorer.test_image(0), "fgsm", radius)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--epsilon=300", "--epsilon: Not of type SliderEpsilon: 300 "),
        ("--epsilon=0.1", "--epsilon: Not of type SliderEpsilon: 0.1 "),
        ("--steps=1000", "--steps: Not of type SliderSteps: 1000 "),
    ],
)
def test_a_start_value_outside_its_slider_fails_in_one_line_before_loading(
    option, expected, monkeypatch
):
    monkeypatch.setattr("lab4.app.start_run", lambda cfg: pytest.fail("loaded before the check"))
    with pytest.raises(SystemExit) as error:
        main("lab4", ["app", f"--config={REPO / 'configs/lab4/app.yaml'}", option])
    assert str(error.value).startswith(f"error: {expected}") and "\n" not in str(error.value)


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(SystemExit) as error:
        app_main(["--config", str(REPO / "configs/lab4/app.yaml"), "--data.data_dir=/nowhere"])
    assert str(error.value) == "error: the web apps need Gradio: pip install -e '.[app]'"


# --- the page, in a real browser ---------------------------------------------------------
@pytest.fixture(scope="module")
def app_url(explorer):
    port = free_port()
    _, app = build_app(explorer, ["fgsm", "pgd"], epsilon=8, steps=5)
    serve(app, "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}"
    app.close()


def test_look_then_attack_a_test_image_in_the_browser(app_url, page, explorer):  # noqa: F811
    image, label = explorer.test_image(2)
    expected = explorer.class_names[explorer.look(image).predicted]
    page.goto(app_url)
    page.click("#attack_button")  # nothing looked at yet: an error in the page, no crash
    page.wait_for_selector("text=error: look at an image first", timeout=20_000)
    page.fill("#index input", "2")
    page.click("#look")
    page.wait_for_selector("#summary :text('predicted')", timeout=20_000)
    summary = page.inner_text("#summary")
    assert f"true class {explorer.class_names[label]}" in summary
    assert f"predicted {expected}" in summary
    assert "in-distribution" in page.inner_text("#verdicts")
    page.click("#attack_button")
    page.wait_for_selector("#attack_summary :text('fgsm at ε = 8/255')", timeout=20_000)
    page.wait_for_selector("#adversarial img", timeout=20_000)
    attack = explorer.attack(image, label, "fgsm", 8 / 255)
    assert f"predicted {explorer.class_names[attack.predicted]}" in page.inner_text(
        "#attack_summary"
    )


def test_an_uploaded_image_and_a_bad_file_in_the_browser(app_url, page, tmp_path):  # noqa: F811
    picture = tmp_path / "photo.png"
    write_png(torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8), str(picture))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    page.goto(app_url)
    page.check("#source input[value='upload']")
    page.set_input_files("#upload input[type=file]", str(text))
    page.wait_for_selector("#upload :text('notes.txt')", timeout=20_000)
    page.click("#look")
    page.wait_for_selector("text=notes.txt: not a readable image", timeout=20_000)
    page.click("#upload button[aria-label='Clear']")
    page.set_input_files("#upload input[type=file]", str(picture))
    page.wait_for_selector("#upload :text('photo.png')", timeout=20_000)
    page.click("#look")
    page.wait_for_selector("#summary :text('predicted')", timeout=20_000)
    assert "true class" not in page.inner_text("#summary")  # an upload has no label
