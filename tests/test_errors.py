"""Every mistake a user can make on the command line ends in one line and a non-zero exit.

Each case runs the real CLI (``common.cli.main``, what ``python -m labN`` calls) in-process and
asserts the SystemExit message: one line, starting with ``error:``, naming what is wrong. One
case also runs as a subprocess to check the exit code and that no traceback reaches stderr.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from argparse import ArgumentError
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from common.cli import main
from common.models.pretrained import ResNet20
from tests.conftest import REPO, write_image_folder

MLP_CONFIG = REPO / "configs/lab1/residual_mlp_mnist.yaml"
CAM_CONFIG = REPO / "configs/lab1/cam/cifar10_resnet20.yaml"
ATTACK_SWEEP = REPO / "configs/lab4/attacks/fgsm_sweep.yaml"
APP_CONFIGS = {"lab3": REPO / "configs/lab3/story.yaml", "lab4": REPO / "configs/lab4/app.yaml"}
#: what each app calls to load its models (patched to fail: checks must come before it)
APP_LOADERS = {
    "lab3": ["lab3.story.captioner.load_pretrained", "lab3.story.writer.load_pretrained"],
    "lab4": ["lab4.app.start_run"],
}
FAKE_MNIST = [
    "--data=common.data.FakeDataModule",
    "--data.image_shape=[1,28,28]",
    "--data.batch_size=16",
    "--data.val_size=32",
    "--data.train_size=64",
    "--trainer.accelerator=cpu",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def fit_args(run_dir: Path) -> list[str]:
    return ["fit", f"--config={MLP_CONFIG}", *FAKE_MNIST, f"--trainer.default_root_dir={run_dir}"]


def error_line(package: str, args: list[str]) -> str:
    """The message of the SystemExit the command ends with (it must end with one)."""
    with pytest.raises(SystemExit) as stop:
        main(package, args)
    message = stop.value.code
    assert isinstance(message, str), f"exit code {message!r} instead of an error line"
    assert message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run folder after one short fit (best.ckpt and last.ckpt)."""
    run_dir = tmp_path_factory.mktemp("finished")
    main("lab1", [*fit_args(run_dir), "--trainer.max_epochs=1"])
    return run_dir


def bad_files(folder: Path, finished_run: Path) -> dict[str, Path]:
    best = (finished_run / "checkpoints" / "best.ckpt").read_bytes()
    files = {
        "empty": b"",
        "truncated": best[: len(best) // 3],
        "not_torch": b"this is not a checkpoint",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.ckpt"
        paths[name].write_bytes(content)
    paths["foreign"] = folder / "foreign.ckpt"  # bare weights, as pretrained files are
    torch.save({"state_dict": {"linear.weight": torch.zeros(2, 2)}}, paths["foreign"])
    paths["missing"] = folder / "missing.ckpt"
    return paths


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("truncated", "damaged or truncated"),
        ("not_torch", "damaged or truncated"),
        ("foreign", "not a Lightning checkpoint"),
    ],
)
def test_a_bad_checkpoint_is_one_line_for_test_and_for_commands(
    case, expected, tmp_path, finished_run
):
    path = bad_files(tmp_path, finished_run)[case]
    test_args = fit_args(finished_run)
    test_args[0] = "test"
    assert expected in error_line("lab1", [*test_args, f"--ckpt_path={path}"])
    write_image_folder(tmp_path / "images", ["any"], 1, (3, 32, 32))
    cam = ["cam", f"--config={CAM_CONFIG}", f"--checkpoint={path}", f"--run_dir={tmp_path}"]
    cam += [f"--images=[{tmp_path / 'images'}]"]
    assert expected in error_line("lab1", cam)


@pytest.mark.parametrize(
    ("other", "expected"),
    [  # the fit's ResidualMLP: a stem, 8 hidden Linear layers and a head, width 16
        ("depth=2", "0 missing, 12 unexpected, 0 of another shape"),  # 6 layers' weight, bias
        ("width=8", "0 missing, 0 unexpected, 19 of another shape"),  # all but the head's bias
    ],
    ids=["shallower", "narrower"],
)
def test_a_checkpoint_of_another_network_is_one_line_naming_the_file(
    other, expected, finished_run, tmp_path, caplog
):
    best = finished_run / "checkpoints" / "best.ckpt"
    args = ["test", *fit_args(tmp_path)[1:], f"--ckpt_path={best}"]
    args += [f"--model.init_args.model.init_args.{other}", "--model.init_args.label_smoothing=0.3"]
    with caplog.at_level("WARNING"):
        message = error_line("lab1", args)
    assert message.startswith(
        f"error: checkpoint {best} holds another network than the config's: it does not fit "
        f"ResidualMLP (tensors: {expected};"
    ), message
    assert not [r for r in caplog.records if r.name == "common.cli"]  # no warning before it


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"these are not weights\n", "not a file written by torch.save"),
        (ResNet20(), "it pickles Python objects, e.g. a whole model"),
        ([torch.zeros(1)], "a list that is not a dict of tensors"),
    ],
    ids=["text", "pickled-model", "list"],
)
def test_pretrained_weights_that_are_not_a_state_dict_say_what_the_file_should_be(
    content, found, tmp_path
):
    weights = tmp_path / "resnet20.th"
    if isinstance(content, bytes):
        weights.write_bytes(content)
    else:
        torch.save(content, weights)
    expected = f"error: {weights} is not a PyTorch state dict of ResNet-20 ({found}"
    path = f"--model.init_args.model.init_args.path={weights}"
    test_args = ["test", f"--config={REPO / 'configs/lab1/resnet20_pretrained.yaml'}", path]
    test_args += [f"--trainer.default_root_dir={tmp_path / 'run'}"]
    cam = ["cam", f"--config={CAM_CONFIG}", f"--model.init_args.path={weights}"]
    cam += [f"--run_dir={tmp_path / 'cam'}"]
    for message in (error_line("lab1", test_args), error_line("lab1", cam)):
        assert message.startswith(expected), message
        assert "torch.save(model.state_dict())" in message and "weights_only" not in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--trainer.max_epocs=1"], "unrecognized arguments: --trainer.max_epocs"),
        (["--trainer.max_epoch=1"], "unrecognized arguments: --trainer.max_epoch"),  # no prefixes
        (["--data.batch_size=0"], "data.batch_size: Not of type PositiveInt"),
        (["--data.val_size=-1"], "data.val_size: Not of type NonNegativeInt"),
        (["--model.init_args.model=lab1.models.NoSuchMLP"], "lab1.models.NoSuchMLP"),
        (["--data=lab4.data.OODDataModule", "--data.ood_sets=[imagenet]"], "unknown OOD sets"),
    ],
    ids=[
        "unknown-option",
        "abbreviation",
        "zero-batch-size",
        "negative-val-size",
        "misspelt-class",
        "ood-set",
    ],
)
def test_a_bad_option_is_one_line_with_the_message_first(extra, expected, tmp_path):
    assert expected in error_line("lab1", [*fit_args(tmp_path), *extra])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--foo=1"], "unrecognized arguments: --foo"),
        (["--max_images=0"], "max_images: Not of type PositiveInt"),
        (["--image_size=-3"], "image_size: Not of type PositiveInt"),
        (["--images=[/no/such/image.png]"], "/no/such/image.png does not exist"),
    ],
    ids=["unknown-option", "zero-images", "negative-size", "missing-image"],
)
def test_a_lab_command_answers_bad_input_in_one_line(extra, expected, tmp_path):
    args = ["cam", f"--config={CAM_CONFIG}", f"--run_dir={tmp_path}", *extra]
    assert expected in error_line("lab1", args)


def test_sweep_and_unknown_commands_answer_in_one_line(tmp_path):
    sweep = REPO / "configs/lab1/sweeps/mlp_depth.yaml"
    assert "--jobs" in error_line("lab1", ["sweep", f"--config={sweep}", "--jobs=0"])
    assert "choose among fit" in error_line("lab1", ["fitt"])


@pytest.mark.parametrize("epsilons", ["[300]", "[1,256]", "[inf]"])
def test_an_attack_epsilon_beyond_255_is_one_line_before_any_work(epsilons, tmp_path):
    run_dir = tmp_path / "run"
    args = ["attack", f"--config={ATTACK_SWEEP}", f"--trainer.default_root_dir={run_dir}"]
    message = error_line("lab4", [*args, f"--trainer.callbacks.epsilons={epsilons}"])
    assert message.startswith("error: --trainer.callbacks.epsilons: Not of type Epsilon255")
    assert "v<=255" in message and not run_dir.exists()


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ("adversarial_cnn_cifar10.yaml", "--model.init_args.budget=2040"),
        ("adversarial_cnn_cifar10.yaml", "--model.init_args.epsilon=300"),
        ("jarn_cnn_cifar10.yaml", "--model.init_args.fgsm_epsilon=1000"),
    ],
)
def test_a_training_epsilon_beyond_255_is_one_line_before_any_work(config, option, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "fit",
        f"--config={REPO / 'configs/lab4' / config}",
        f"--trainer.default_root_dir={run_dir}",
    ]
    message = error_line("lab4", [*args, option])
    assert "Not of type Epsilon255" in message and "v<=255" in message
    assert not run_dir.exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A local port this test listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.mark.parametrize("package", ["lab3", "lab4"])
def test_an_app_port_that_cannot_be_served_is_one_line_before_models_load(
    package, busy_port, monkeypatch
):
    for loader in APP_LOADERS[package]:
        monkeypatch.setattr(loader, lambda *_, **__: pytest.fail("models loaded before the check"))
    app = ["app", f"--config={APP_CONFIGS[package]}"]
    message = error_line(package, [*app, f"--port={busy_port}"])
    assert message.startswith(f"error: cannot serve on 127.0.0.1:{busy_port} (Address already")
    assert "--port: Not of type Port: 70000 " in error_line(package, [*app, "--port=70000"])
    assert "--port: Not of type Port: 0 " in error_line(package, [*app, "--port=0"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("trainer:\n  max_epochs: [1\nmodel: x\n", "line 3"),
        ("- a list\n- not options\n", "not a mapping"),
    ],
    ids=["empty", "comment-only", "malformed", "a-list"],
)
def test_an_empty_or_malformed_config_names_the_file_and_line(content, expected, tmp_path):
    config = tmp_path / "experiment.yaml"
    config.write_text(content)
    message = error_line("lab1", ["fit", f"--config={config}"])
    assert str(config) in message and expected in message


def test_a_run_folder_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    message = error_line("lab1", fit_args(blocker / "run"))
    assert "cannot write to" in message and "--trainer.default_root_dir" in message
    message = error_line("lab1", ["cam", f"--config={CAM_CONFIG}", f"--run_dir={blocker}/run"])
    assert "cannot write to" in message and "--run_dir" in message


def test_a_nan_loss_is_one_line_and_keeps_the_saved_checkpoints(tmp_path):
    main("lab1", [*fit_args(tmp_path), "--trainer.max_epochs=1"])
    saved = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    again = [*fit_args(tmp_path), "--trainer.max_epochs=2", "--overwrite=true"]
    message = error_line("lab1", [*again, "--model.init_args.optimizer.init_args.lr=1e30"])
    assert "lower the learning rate" in message
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == saved


def test_a_second_fit_into_a_finished_run_leaves_its_checkpoints_byte_identical(finished_run):
    checkpoints = finished_run / "checkpoints"
    before = {p.name: p.read_bytes() for p in checkpoints.glob("*.ckpt")}
    assert set(before) == {"best.ckpt", "last.ckpt"}
    message = error_line("lab1", [*fit_args(finished_run), "--trainer.max_epochs=1"])
    assert "--ckpt_path last" in message and "--overwrite true" in message
    assert {p.name: p.read_bytes() for p in checkpoints.glob("*.ckpt")} == before


def test_overwrite_starts_over_in_a_finished_run_folder(tmp_path):
    main("lab1", [*fit_args(tmp_path), "--trainer.max_epochs=1"])
    main("lab1", [*fit_args(tmp_path), "--trainer.max_epochs=1", "--overwrite=true"])


def test_the_real_process_exits_non_zero_with_one_line_and_no_traceback(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer: [\n")
    done = subprocess.run(
        [sys.executable, "-m", "lab1", "fit", f"--config={config}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: config file {config}"), done.stderr


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ArgumentError):  # jsonargparse's own exception, not turned into a line
        main("lab1", [*fit_args(tmp_path), "--debug", "--data.batch_size=0"])
