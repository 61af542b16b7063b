"""Knowledge distillation: the loss against numpy, a frozen teacher, student-only checkpoints."""

from __future__ import annotations

import csv
import warnings

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from scipy.special import log_softmax, softmax

from common.checkpoints import CheckpointError, load_classifier_checkpoint
from common.classifier import ImageClassifier
from common.cli import main
from common.data import FakeDataModule
from common.losses import DistillationLoss, distillation_loss
from common.models import CifarResNet
from lab1.distillation import DistillationClassifier
from tests.conftest import REPO, tiny_trainer

CONFIGS = REPO / "configs/lab1/distillation"
DISTILLED = [f"--config={CONFIGS / 'student_alone.yaml'}", f"--config={CONFIGS / 'distilled.yaml'}"]
FAKE_DATA = [
    "--data=common.data.FakeDataModule",
    "--data.train_size=48",
    "--data.val_size=16",
    "--data.test_size=16",
    "--data.batch_size=16",
    "--trainer.accelerator=cpu",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
]


# --- the loss ------------------------------------------------------------------------------


def numpy_distillation(student, teacher, targets, temperature, alpha, smoothing):
    """Hinton et al.'s loss written out: α T² KL(p_t ‖ p_s) at temperature T + (1 − α) CE."""
    p_teacher = softmax(teacher / temperature, axis=1)
    kl = (p_teacher * (np.log(p_teacher) - log_softmax(student / temperature, axis=1))).sum(1)
    log_q = log_softmax(student, axis=1)
    n, classes = student.shape
    smoothed = np.full((n, classes), smoothing / classes)
    smoothed[np.arange(n), targets] += 1 - smoothing
    cross_entropy = -(smoothed * log_q).sum(1)
    return alpha * temperature**2 * kl.mean() + (1 - alpha) * cross_entropy.mean()


@pytest.mark.parametrize("temperature", [1.0, 2.5, 8.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_equals_an_independent_computation(temperature, alpha, smoothing):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 3
    teacher = torch.randn(6, 5, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(0, 5, (6,), generator=generator)
    value = distillation_loss(student, teacher, targets, temperature, alpha, smoothing)
    expected = numpy_distillation(
        student.numpy(), teacher.numpy(), targets.numpy(), temperature, alpha, smoothing
    )
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_alpha_0_is_cross_entropy_and_alpha_1_ignores_the_labels():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(2, 8, 10, generator=generator)
    targets = torch.randint(0, 10, (8,), generator=generator)
    cross_entropy = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(student, targets)
    assert torch.equal(distillation_loss(student, teacher, targets, 4.0, 0.0, 0.1), cross_entropy)
    soft = distillation_loss(student, teacher, targets, 4.0, 1.0)
    assert torch.equal(soft, distillation_loss(student, teacher, (targets + 1) % 10, 4.0, 1.0))
    assert distillation_loss(teacher, teacher, targets, 4.0, 1.0).abs() < 1e-6
    assert soft > 0


def test_loss_sends_no_gradient_to_the_teacher_and_checks_its_arguments():
    student, teacher = (torch.randn(4, 3, requires_grad=True) for _ in range(2))
    DistillationLoss(2.0, 0.5)(student, teacher, torch.tensor([0, 1, 2, 0])).backward()
    assert student.grad is not None and teacher.grad is None
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=0.0)


# --- the LightningModule -------------------------------------------------------------------


def tiny_network() -> CifarResNet:
    return CifarResNet((1,), (4,))


def tiny_data() -> FakeDataModule:
    return FakeDataModule(train_size=48, val_size=16, test_size=16, batch_size=16)


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory) -> str:
    """A `fit` checkpoint of a tiny ImageClassifier (one batch of FakeData)."""
    path = tmp_path_factory.mktemp("teacher") / "teacher.ckpt"
    L.seed_everything(0)
    data = tiny_data()
    classifier = ImageClassifier(tiny_network(), 10, normalization=data.normalization)
    fit = tiny_trainer(path.parent, max_epochs=1, limit_train_batches=1)
    fit.fit(classifier, data)
    fit.save_checkpoint(path)
    return str(path)


def distiller(teacher_checkpoint: str, **kwargs) -> DistillationClassifier:
    data = tiny_data()
    return DistillationClassifier(
        tiny_network(),
        tiny_network(),
        10,
        teacher_checkpoint=teacher_checkpoint,
        normalization=data.normalization,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
        **kwargs,
    )


class TeacherModes(L.Callback):
    """Records the train/eval mode of every module of the teacher and student at each batch."""

    def __init__(self) -> None:
        self.teacher: list[bool] = []
        self.student: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.teacher.append(any(m.training for m in pl_module.teacher.modules()))
        self.student.append(pl_module.model.training)


def test_the_teacher_stays_frozen_and_in_eval_mode(teacher_checkpoint, tmp_path):
    module = distiller(teacher_checkpoint)
    teacher_before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in module.model.state_dict().items()}
    module.train()  # as a user (or an older Lightning at the start of `fit`) may do
    assert not module.teacher.training and module.model.training
    modes = TeacherModes()
    # validation between the epochs: Lightning restores modes around it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_trainer(tmp_path, callbacks=[modes], num_sanity_val_steps=1).fit(module, tiny_data())
    assert not [w for w in caught if "in eval mode" in str(w.message)]  # the teacher's are meant
    assert modes.teacher == [False] * 4 and modes.student == [True] * 4
    assert not any(p.requires_grad or p.grad is not None for p in module.teacher.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)  # logged, tabled
    assert trainable == sum(p.numel() for p in module.model.parameters())
    after = module.teacher.state_dict()  # weights and batch-norm statistics
    assert all(torch.equal(teacher_before[k], after[k]) for k in after)
    assert not torch.equal(
        student_before["classifier.linear.weight"],
        module.model.state_dict()["classifier.linear.weight"],
    )
    # it really is the checkpoint's network
    reloaded = tiny_network()
    load_classifier_checkpoint(reloaded, teacher_checkpoint)
    assert all(torch.equal(v, after[k]) for k, v in reloaded.state_dict().items())


def test_alpha_0_trains_like_the_image_classifier(teacher_checkpoint, tmp_path):
    L.seed_everything(0)  # the same initial student
    distilled = distiller(teacher_checkpoint, alpha=0.0, label_smoothing=0.1)
    L.seed_everything(0)
    sgd = distilled.optimizer
    plain = ImageClassifier(tiny_network(), 10, tiny_data().normalization, sgd, label_smoothing=0.1)
    for module in (distilled, plain):
        tiny_trainer(tmp_path, limit_val_batches=0).fit(module, tiny_data())
    trained, expected = distilled.model.state_dict(), plain.model.state_dict()
    assert all(torch.allclose(trained[k].float(), expected[k].float()) for k in expected)


def test_checkpoints_hold_the_student_only(teacher_checkpoint, tmp_path):
    module = distiller(teacher_checkpoint)
    fit = tiny_trainer(tmp_path, max_epochs=1)
    fit.fit(module, tiny_data())
    path = tmp_path / "student.ckpt"
    fit.save_checkpoint(path)
    state = torch.load(path, weights_only=True)["state_dict"]
    assert not [k for k in state if k.startswith("teacher.")]
    student = tiny_network()
    load_classifier_checkpoint(student, str(path))
    trained = module.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in student.state_dict().items())
    # and a fresh module (teacher from teacher_checkpoint) loads it strictly
    fresh = distiller(teacher_checkpoint)
    tiny_trainer(tmp_path).validate(fresh, tiny_data(), ckpt_path=path, verbose=False)
    assert all(torch.equal(v, trained[k]) for k, v in fresh.model.state_dict().items())


def test_a_bad_or_missing_teacher_is_one_clear_error(teacher_checkpoint, tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="teacher_checkpoint: checkpoint .* cannot be read"):
        distiller(str(broken))
    with pytest.raises(ValueError, match="teacher CifarResNet is untrained"):
        DistillationClassifier(tiny_network(), tiny_network(), 10)
    with pytest.raises(SystemExit) as error:  # through the command line: one line
        main(
            "lab1",
            [
                "fit",
                *DISTILLED,
                f"--model.init_args.teacher_checkpoint={tmp_path / 'missing.ckpt'}",
                f"--trainer.default_root_dir={tmp_path / 'run'}",
            ],
        )
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("error: teacher_checkpoint: checkpoint ")
    assert "missing.ckpt does not exist; run `fit` first" in message


# --- the configs through the command line ----------------------------------------------------


@pytest.fixture(scope="module")
def resnet20_checkpoint(tmp_path_factory) -> str:
    """A ResNet-20 checkpoint like the one `fit` of resnet20_cifar10.yaml leaves (untrained)."""
    path = tmp_path_factory.mktemp("resnet20") / "best.ckpt"
    teacher = ImageClassifier(CifarResNet((3, 3, 3)), 10, normalization=([0.5] * 3, [0.25] * 3))
    checkpoint = {"pytorch-lightning_version": L.__version__, "state_dict": teacher.state_dict()}
    torch.save(checkpoint, path)
    return str(path)


def test_fit_then_test_of_the_distilled_config(resnet20_checkpoint, tmp_path):
    """student_alone.yaml + distilled.yaml: fit, `test --ckpt_path best`, then the checkpoint in
    a plain student network."""
    run = tmp_path / "run"
    args = [
        *DISTILLED,
        f"--model.init_args.teacher_checkpoint={resnet20_checkpoint}",
        *FAKE_DATA,
        f"--trainer.default_root_dir={run}",
    ]
    main("lab1", ["fit", *args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    best = run / "checkpoints" / "best.ckpt"
    assert not [k for k in torch.load(best, weights_only=True)["state_dict"] if "teacher" in k]
    main("lab1", ["test", *args, "--ckpt_path=best"])
    rows = []
    for path in sorted(run.glob("version_*/metrics.csv")):
        with open(path) as f:
            rows += list(csv.DictReader(f))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"val/acc", "val/teacher_acc", "test/acc", "test/teacher_acc"} <= logged
    student = CifarResNet((2, 2, 2), (8, 16, 32))  # blocks/student_resnet14_half.yaml
    load_classifier_checkpoint(student, str(best))
    assert sum(p.numel() for p in student.parameters()) == 44_370


def test_the_pretrained_teacher_override_runs_one_batch(tmp_path):
    pretrained = f"--config={CONFIGS / 'pretrained_teacher.yaml'}"
    run = ["--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}"]
    main("lab1", ["fit", *DISTILLED, pretrained, *FAKE_DATA, *run])


def test_every_run_of_the_distillation_sweep_has_the_same_recipe_and_its_own_t_and_alpha(capsys):
    sweep = yaml.safe_load((REPO / "configs/lab1/sweeps/distillation.yaml").read_text())
    runs = {"alone": sweep["baselines"]["student alone (cross-entropy)"]}
    for name, args in sweep["experiments"].items():  # as common.sweep composes them
        for value in sweep["values"]:
            runs[name, value] = [*args, f"--{sweep['parameter']}={value}", *sweep.get("args", [])]
    printed = {}
    for run, args in runs.items():
        with pytest.raises(SystemExit) as done:
            main("lab1", ["fit", *args, "--print_config"])
        assert done.value.code in (0, None)
        printed[run] = yaml.safe_load(capsys.readouterr().out)
    assert len(printed) == 1 + 2 * 4
    grid = set()
    for run, config in printed.items():
        model = config["model"]["init_args"]
        recipe = {key: model[key] for key in ("model", "optimizer", "label_smoothing")}
        recipe.update(seed=config["seed_everything"], data=config["data"])
        recipe.update(epochs=config["trainer"]["max_epochs"])
        if run == "alone":
            assert config["model"]["class_path"] == "common.classifier.ImageClassifier"
            expected = recipe
        else:
            assert recipe == expected, run
            grid.add((model["temperature"], model["alpha"]))
    assert grid == {(t, a) for t in (1.0, 2.0, 4.0, 8.0) for a in (0.5, 0.9)}


def test_the_teacher_override_is_the_recipe_without_label_smoothing(capsys):
    def printed(*configs: str) -> dict:
        with pytest.raises(SystemExit) as done:
            main("lab1", ["fit", *(f"--config={c}" for c in configs), "--print_config"])
        assert done.value.code in (0, None)
        return yaml.safe_load(capsys.readouterr().out)

    recipe = REPO / "configs/lab1/resnet20_cifar10.yaml"
    base, teacher = printed(recipe), printed(recipe, CONFIGS / "teacher.yaml")
    assert base["model"]["init_args"]["label_smoothing"] == 0.1
    assert teacher["model"]["init_args"]["label_smoothing"] == 0.0
    distilled = yaml.safe_load((CONFIGS / "distilled.yaml").read_text())
    root = teacher["trainer"]["default_root_dir"]  # distilled.yaml reads its best checkpoint
    assert distilled["model"]["init_args"]["teacher_checkpoint"] == f"{root}/checkpoints/best.ckpt"
    for config in (base, teacher):  # all else is the recipe
        del config["model"]["init_args"]["label_smoothing"], config["trainer"]["default_root_dir"]
    assert teacher == base
