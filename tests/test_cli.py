"""The CLI end to end: every config smoke-run, resume from last, determinism, clear errors."""

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from common.cli import main
from tests.conftest import REPO

# LightningCLI experiment configs (a trainer and data); block files, override files stacked on a
# base with a second --config, sweeps and other commands' configs are tested apart
CONFIGS = sorted(
    p
    for p in (REPO / "configs").rglob("*.yaml")
    if {"trainer", "data"} <= set(yaml.safe_load(p.read_text()))  # overrides: tested with a base
    and not {"lab2", "lab3"} & set(p.relative_to(REPO / "configs").parts)  # not classifiers:
)  # tests/test_lab2.py, tests/test_lab3.py
SWEEPS = sorted((REPO / "configs").rglob("sweeps/*.yaml"))


def fake_data_args(config: Path) -> list[str]:
    """Replace a config's dataset by FakeData of the same image shape and class count."""
    spec = yaml.safe_load(config.read_text())["data"]
    if isinstance(spec, str):  # a block file, relative to the config
        spec = yaml.safe_load((config.parent / spec).read_text())
    module, name = spec["class_path"].rsplit(".", 1)
    data = getattr(__import__(module, fromlist=[name]), name)(**spec.get("init_args", {}))
    shape = ",".join(map(str, data.image_shape))
    return [
        "--data=common.data.FakeDataModule",
        f"--data.image_shape=[{shape}]",
        f"--data.num_classes={data.num_classes}",
        "--data.batch_size=16",
        "--data.val_size=32",
    ]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_config_runs_one_batch(config, tmp_path):
    main(
        "lab1",
        [
            "fit",
            f"--config={config}",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            *fake_data_args(config),
        ],
    )


def test_print_config_prints_a_reusable_config(capsys):
    config = REPO / "configs/lab1/residual_mlp_mnist.yaml"
    with pytest.raises(SystemExit) as done:
        main("lab1", ["fit", f"--config={config}", "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["model"]["class_path"] == "lab1.models.ResidualMLP"
    assert printed["seed_everything"] == 0


def run_fit(tmp_path: Path, *extra: str) -> None:
    config = REPO / "configs/lab1/residual_mlp_mnist.yaml"
    main(
        "lab1",
        [
            "fit",
            f"--config={config}",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]",
            *fake_data_args(config),
            "--data.train_size=96",
            *extra,
        ],
    )


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["state_dict"], checkpoint["epoch"], checkpoint["global_step"]


def test_same_config_twice_gives_the_same_weights(tmp_path):
    run_fit(tmp_path / "a", "--trainer.max_epochs=2")
    run_fit(tmp_path / "b", "--trainer.max_epochs=2")
    a, _, _ = final_weights(tmp_path / "a")
    b, _, _ = final_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


class CtrlCAfterTwoEpochs(L.Callback):
    """Presses Ctrl-C as the third epoch starts (its unfinished work is what a resume loses)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 2 and batch_idx == 1:
            raise KeyboardInterrupt


def test_resume_from_last_continues_where_the_run_stopped(tmp_path):
    run_fit(tmp_path / "full", "--trainer.max_epochs=3")
    with pytest.raises(SystemExit):
        run_fit(
            tmp_path / "split",
            "--trainer.max_epochs=3",
            "--trainer.callbacks=tests.test_cli.CtrlCAfterTwoEpochs",
        )
    assert final_weights(tmp_path / "split")[1] == 1  # stopped after epoch index 1
    run_fit(tmp_path / "split", "--trainer.max_epochs=3", "--ckpt_path=last")
    full, full_epoch, full_step = final_weights(tmp_path / "full")
    resumed, epoch, step = final_weights(tmp_path / "split")
    assert (epoch, step) == (full_epoch, full_step) == (2, 12)
    assert all(torch.allclose(full[k].float(), resumed[k].float(), atol=1e-6) for k in full)


def test_resuming_a_finished_run_says_so_and_adds_nothing_to_its_folder(tmp_path, capsys):
    run_fit(tmp_path, "--trainer.max_epochs=1", "--trainer.logger=true")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as stop:
        run_fit(tmp_path, "--trainer.max_epochs=1", "--trainer.logger=true", "--ckpt_path=last")
    assert stop.value.code == 0  # `make run` twice: its test step still runs
    assert sorted(tmp_path.rglob("*")) == before  # no empty version_N, no W&B run
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "last.ckpt has finished its training (1 epochs of max_epochs 1): "
        "nothing to resume; raise --trainer.max_epochs to train longer, or start over "
        "(--overwrite true, no --ckpt_path)"
    )


def test_resuming_with_other_hyperparameters_says_the_checkpoints_win(tmp_path, caplog):
    run_fit(tmp_path, "--trainer.max_epochs=1")
    with caplog.at_level("WARNING", logger="common.cli"):
        run_fit(tmp_path, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert not [r for r in caplog.records if r.name == "common.cli"]  # same config: no warning
    with caplog.at_level("WARNING", logger="common.cli"):
        run_fit(
            tmp_path, "--trainer.max_epochs=3", "--ckpt_path=last", "--model.label_smoothing=0.3"
        )
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "common.cli"]
    assert "model hyperparameters replace the config's: label_smoothing 0.3 → 0.0 (" in warning


def test_test_best_reads_the_checkpoint_of_the_fit_run(tmp_path):
    run_fit(tmp_path, "--trainer.max_epochs=1")
    config = REPO / "configs/lab1/residual_mlp_mnist.yaml"
    main(
        "lab1",
        [
            "test",
            f"--config={config}",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            "--ckpt_path=best",
            *fake_data_args(config),
        ],
    )
    with open(next(tmp_path.glob("version_*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert 0.0 <= float(rows[-1]["test/acc"]) <= 1.0


def _test_error_message(tmp_path, ckpt_path: str) -> str:
    """Run `test` with ``ckpt_path``; return the one-line error it must exit with."""
    config = REPO / "configs/lab1/residual_mlp_mnist.yaml"
    with pytest.raises(SystemExit) as error:
        main(
            "lab1",
            [
                "test",
                f"--config={config}",
                f"--trainer.default_root_dir={tmp_path}",
                f"--ckpt_path={ckpt_path}",
                *fake_data_args(config),
            ],
        )
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_best_checkpoint_is_one_clear_line(tmp_path):
    assert "does not exist; run `fit`" in _test_error_message(tmp_path, "best")


def test_corrupt_checkpoint_is_one_clear_line_and_is_left_alone(tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    assert "cannot be read" in _test_error_message(tmp_path, str(broken))
    assert broken.read_bytes() == b"not a checkpoint"


def test_early_stopping_is_available_from_the_command_line(tmp_path):
    run_fit(
        tmp_path,
        "--trainer.max_epochs=3",
        "--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping",
        "--trainer.callbacks.monitor=val/acc",
        "--trainer.callbacks.mode=max",
        "--trainer.callbacks.stopping_threshold=0.0",  # any accuracy is good enough: stop at once
    )
    assert final_weights(tmp_path)[1] == 0


#: a config for every command of every lab (a new command must be added here)
COMMAND_CONFIGS = {
    "lab1": {
        **dict.fromkeys(["fit", "validate", "test", "predict"], "lab1/residual_mlp_mnist.yaml"),
        "sweep": "lab1/sweeps/mlp_depth.yaml",
        "baseline": "lab1/transfer/svm_baseline.yaml",
        "cam": "lab1/cam/cifar10_resnet20.yaml",
    },
    "lab2": {
        **dict.fromkeys(["fit", "validate", "test"], "lab2/gpt_small.yaml"),
        "generate": None,
        "export": None,
        "report": "lab2/report.yaml",
    },
    "lab3": {
        **dict.fromkeys(["fit", "validate", "test"], "lab3/rl/ppo_cartpole.yaml"),
        "predict": "lab3/story.yaml",
        "interactive": None,
        "app": "lab3/story.yaml",
    },
    "lab4": {
        **dict.fromkeys(["fit", "validate", "test", "predict"], "lab4/cnn_cifar10.yaml"),
        "sweep": None,  # no Lab 4 sweep config: the option list is printed instead
        "attack": "lab4/attacks/fgsm_sweep.yaml",
        "odin": "lab4/ood/odin_search.yaml",
        "report": "lab4/ood/report.yaml",  # every report.yaml: tests/test_report.py
        "saliency": "lab4/robustness/saliency.yaml",
        "app": "lab4/app.yaml",
    },
}


@pytest.mark.parametrize("lab", sorted(COMMAND_CONFIGS))
def test_help_lists_every_command_and_each_prints_its_config(lab, capsys):
    main(lab, ["--help"])
    listed = capsys.readouterr().out.split("commands:\n")[1].split("\n\n")[0]
    names = [line.split()[0] for line in listed.splitlines()]
    assert sorted(names) == sorted(COMMAND_CONFIGS[lab])
    for name, config in COMMAND_CONFIGS[lab].items():
        option = ["--print_config"] if config else ["--help"]
        with pytest.raises(SystemExit) as done:
            main(
                lab, [name, *([f"--config={REPO / 'configs' / config}"] if config else []), *option]
            )
        assert done.value.code in (0, None), f"{lab} {name}: {done.value.code}"
        printed = capsys.readouterr().out
        assert yaml.safe_load(printed) if config else printed, f"{lab} {name} printed nothing"


def test_a_lab_command_answers_ctrl_c_even_when_started_ignoring_it(capsys):
    """A shell starts a script's background job (`make run &`) with SIGINT ignored."""
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        main("lab1", ["--help"])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
