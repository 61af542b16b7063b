"""The attack sweep as a ``test`` run: the sample, the registry, the callback's files and errors."""

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from common.cli import main
from common.data import FakeDataModule
from common.data.datamodule import TensorImageDataset
from lab4.attacks import ATTACKS, Attack, AttackResult
from lab4.models import SimpleCNN
from lab4.robustness import RobustnessEvaluation, attack_sample, example_rows
from tests.conftest import REPO

ATTACK_CONFIGS = REPO / "configs/lab4/attacks"


def test_the_sample_is_class_balanced_and_chosen_by_identity_whatever_the_serving_order():
    data = FakeDataModule(num_classes=4, test_size=60, seed=3)
    data.setup("test")
    served = data.splits["test"]
    assert not torch.equal(served.ids, torch.arange(60))  # served in a mixed order
    source = data.load("test")  # file order
    # independently: each class's images in the seeded shuffle of the file positions, and the
    # first of each class, then the second, …: 10 images of 4 classes = 3 + 3 + 2 + 2
    shuffled = torch.randperm(60, generator=torch.Generator().manual_seed(3)).tolist()
    per_class = [[i for i in shuffled if source.targets[i] == c] for c in range(4)]
    ids = sorted(sum((per_class[c][:quota] for c, quota in enumerate((3, 3, 2, 2))), []))
    images, labels = attack_sample(data, 10)
    assert torch.equal(images, source.images[ids]) and torch.equal(labels, source.targets[ids])
    assert labels.bincount().tolist() == [3, 3, 2, 2]
    order = torch.randperm(60, generator=torch.Generator().manual_seed(99))
    data.splits["test"] = TensorImageDataset(
        served.images[order], served.targets[order], served.ids[order]
    )
    again = attack_sample(data, 10)
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)
    # classes that run out leave their turns to the others: all but one image = all but the
    # last turn of a largest class; more images than there are: all of them
    sizes = source.targets.bincount()
    left_out = sizes - attack_sample(data, 60 - 1)[1].bincount(minlength=4)
    assert left_out.sum() == 1 and sizes[left_out.argmax()] == sizes.max()
    assert len(attack_sample(data, 1000)[0]) == 60


def test_the_examples_go_round_robin_over_the_classes_successes_first():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    before = torch.tensor([0, 0, 0, 1, 0, 2, 2, 2])  # image 4 was wrong before the attack
    success = torch.tensor([False, True, True, False, True, False, False, True])
    probabilities_before = torch.nn.functional.one_hot(before, 3).float()
    result = AttackResult(
        images=torch.zeros(8, 3, 2, 2),
        adversarial=torch.zeros(8, 3, 2, 2),
        labels=labels,
        targets=None,
        probabilities_before=probabilities_before,
        probabilities_after=probabilities_before,
        success=success,
        iterations=torch.zeros(8, dtype=torch.long),
    )
    # class 0: successes 1, 2 then 0; class 1: 3 (right before) then 4; class 2: 7, then 5, 6
    assert example_rows(result, 8) == [1, 3, 7, 2, 4, 5, 0, 6]
    assert example_rows(result, 3) == [1, 3, 7]


class TwoSteps(Attack):
    """A new attack as a user would add it: two FGSM steps on every image."""

    def options(self):
        return {"iterations": 2, "stop_on_success": False}


def test_the_callback_builds_its_attacks_from_the_registry(monkeypatch):
    monkeypatch.setitem(ATTACKS, "two_steps", TwoSteps)
    data = FakeDataModule(image_shape=(3, 8, 8), test_size=20, batch_size=8)
    data.setup("test")
    trainer = SimpleNamespace(datamodule=data, strategy=SimpleNamespace(root_device="cpu"))
    torch.manual_seed(0)
    model = SimpleCNN((4, 8), num_classes=10, mean=[0.5] * 3, std=[0.29] * 3).eval()
    callback = RobustnessEvaluation(epsilons=[1, 2], attacks=["fgsm", "two_steps"], num_images=16)
    rows, example = callback.sweep(trainer, model)
    assert [(row["attack"], row["epsilon"]) for row in rows] == [
        ("fgsm", 1), ("fgsm", 2), ("two_steps", 1), ("two_steps", 2)
    ]  # fmt: skip
    assert all(row["samples"] == 16 for row in rows)
    # the example is the last attack at the middle ε: two steps of 2/255 on every image
    assert (example.iterations == 2).all()
    assert (example.adversarial - example.images).abs().max() == pytest.approx(4 / 255, abs=1e-6)


def test_the_callback_attacks_in_balls_with_each_attacks_step_rule():
    data = FakeDataModule(image_shape=(3, 8, 8), test_size=20, batch_size=8)
    data.setup("test")
    trainer = SimpleNamespace(datamodule=data, strategy=SimpleNamespace(root_device="cpu"))
    torch.manual_seed(0)
    model = SimpleCNN((4, 8), num_classes=10, mean=[0.5] * 3, std=[0.29] * 3).eval()
    callback = RobustnessEvaluation(
        epsilons=[2, 8],
        attacks=["fgsm", "pgd", "apgd_ce"],
        iterations=None,
        budget_mode="ball",
        restarts=2,
        num_images=10,
    )
    rows, example = callback.sweep(trainer, model)
    assert [(r["attack"], r["epsilon"], r["steps"], r["restarts"]) for r in rows] == [
        ("fgsm", 2, 1, 1), ("fgsm", 8, 1, 1),
        ("pgd", 2, 20, 2), ("pgd", 8, 20, 2),
        ("apgd_ce", 2, 100, 2), ("apgd_ce", 8, 100, 2),
    ]  # fmt: skip
    # the example is APGD-CE at 8/255: inside that ball, every image at most 2 runs × 100 steps
    assert (example.adversarial - example.images).abs().max() <= 8 / 255 + 1e-6
    assert example.iterations.max() <= 200
    assert "robust/apgd_ce/linf8/robust_accuracy" in callback.metrics(rows)
    with pytest.raises(ValueError, match="budget must be null"):
        RobustnessEvaluation(budget=4, budget_mode="ball")


def sweep(data_dir, run_dir, *extra: str) -> None:
    main(
        "lab4",
        [
            "test",
            f"--config={ATTACK_CONFIGS / 'fgsm_sweep.yaml'}",
            *extra,
            f"--data.data_dir={data_dir}",
            "--data.val_size=4",
            "--data.download=false",
            f"--trainer.default_root_dir={run_dir}",
            "--trainer.callbacks.num_images=8",
            "--trainer.callbacks.epsilons=[1, 8]",
            "--trainer.callbacks.examples=2",
        ],
    )


def test_sweep_writes_json_tables_figures_and_the_report_reads_them(ood_folders, tmp_path):
    run_dir = tmp_path / "custom_cnn"
    sweep(ood_folders, run_dir)
    sweep(ood_folders, run_dir, f"--config={ATTACK_CONFIGS / 'targeted_dog.yaml'}")
    untargeted, targeted = sorted(run_dir.glob("version_*"))
    run = json.loads((untargeted / "robustness.json").read_text())
    assert (run["label"], run["target"], run["num_images"]) == ("custom_cnn", None, 8)
    assert [(r["attack"], r["epsilon"]) for r in run["rows"]] == [
        ("fgsm", 1), ("fgsm", 8), ("iterative", 1), ("iterative", 8)
    ]  # fmt: skip
    assert all(r["seconds"] > 0 and r["samples"] == 8 for r in run["rows"])
    with open(untargeted / "robustness.csv") as f:
        assert [float(r["robust_accuracy"]) for r in csv.DictReader(f)] == [
            r["robust_accuracy"] for r in run["rows"]
        ]
    assert "| iterative | 8 |" in (untargeted / "robustness.md").read_text()
    for version in (untargeted, targeted):
        for figure in ("sweep", "examples"):
            assert (version / f"robustness_{figure}.png").stat().st_size > 5_000
    dog = json.loads((targeted / "robustness.json").read_text())
    assert dog["target"] == "dog" and "target_confidence_gain" in dog["rows"][0]
    assert "robust_dog/iterative/eps8/success_rate" in (targeted / "metrics.csv").read_text()

    table = main_report(tmp_path, run_dir)
    rows = [line for line in table.splitlines() if line.startswith("| my CNN |")]
    assert [line.split(" | ")[1:4] for line in rows] == [
        [attack, target, epsilon]
        for target in ("—", "dog")
        for attack in ("fgsm", "iterative")
        for epsilon in ("1", "8")
    ]
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert names == {"attacks.md"} | {
        f"my_cnn{suffix}{kind}"
        for suffix in ("", "_dog")
        for kind in (".json", "_sweep.png", "_examples.png")
    }


def test_the_strong_evaluation_runs_as_an_override_and_writes_its_own_files(ood_folders, tmp_path):
    """configs/lab4/attacks/strong.yaml (configs/lab4/blocks/attack_strong.yaml) end to end."""
    sweep(ood_folders, tmp_path, f"--config={ATTACK_CONFIGS / 'strong.yaml'}")
    (version,) = tmp_path.glob("version_*")
    run = json.loads((version / "robustness_strong.json").read_text())
    assert (run["budget_mode"], run["num_images"]) == ("ball", 8)
    assert [(r["attack"], r["epsilon"], r["steps"]) for r in run["rows"]] == [
        ("fgsm", 1, 1), ("fgsm", 8, 1), ("pgd", 1, 20), ("pgd", 8, 20),
        ("apgd_ce", 1, 100), ("apgd_ce", 8, 100),
    ]  # fmt: skip
    assert "| apgd_ce | 8 | 100 × 1 |" in (version / "robustness_strong.md").read_text()
    assert (version / "robustness_strong_examples.png").stat().st_size > 5_000
    assert not list(version.glob("robustness.*"))
    assert "robust/apgd_ce/linf8/robust_accuracy" in (version / "metrics.csv").read_text()


def main_report(tmp_path, run_dir) -> str:
    output = tmp_path / "report" / "attacks.md"
    main(
        "lab4",
        ["report", "--kind=attacks", f"--runs={{'my CNN': '{run_dir}'}}", f"--output={output}"],
    )
    return output.read_text()


@pytest.mark.parametrize(
    "model", sorted((ATTACK_CONFIGS / "models").glob("*.yaml")), ids=lambda p: p.name
)
def test_each_model_override_runs_with_its_label_and_run_folder(model, ood_folders, tmp_path):
    override = yaml.safe_load(model.read_text())["trainer"]
    (label,) = [c["init_args"]["label"] for c in override["callbacks"]]
    run_dir = tmp_path / Path(override["default_root_dir"]).name
    sweep(ood_folders, run_dir, f"--config={model}", "--trainer.callbacks.attacks=[fgsm]")
    (version,) = run_dir.glob("version_*")
    assert json.loads((version / "robustness.json").read_text())["label"] == label


def test_an_unknown_target_class_fails_in_one_line_with_the_choices(ood_folders, tmp_path):
    with pytest.raises(SystemExit) as error:
        sweep(ood_folders, tmp_path, "--trainer.callbacks.target=dgo")
    message = str(error.value)
    assert "unknown target class 'dgo'; choose among airplane, automobile" in message
    assert "\n" not in message and not list(tmp_path.glob("version_*/robustness*"))


@pytest.mark.parametrize(
    "option",
    [
        "--trainer.callbacks.epsilons=[-1]",
        "--trainer.callbacks.attacks=[fgsmm]",
        "--trainer.callbacks.budget_mode=sphere",
        "--trainer.callbacks.restarts=0",
        "--trainer.callbacks.iterations=0",
        "--trainer.callbacks.num_images=0",
        "--trainer.callbacks.examples=-1",
    ],
)
def test_invalid_sweep_settings_fail_when_parsed(tmp_path, option):
    with pytest.raises(SystemExit) as error:
        main(
            "lab4",
            ["test", f"--config={ATTACK_CONFIGS / 'fgsm_sweep.yaml'}", option, "--print_config"],
        )
    assert error.value.code != 0 and "trainer.callbacks" in str(error.value)
