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
from lab4.attacks import ATTACKS, Attack
from lab4.models import SimpleCNN
from lab4.robustness import RobustnessEvaluation, attack_sample
from tests.conftest import REPO

ATTACK_CONFIGS = REPO / "configs/lab4/attacks"


def test_the_sample_is_chosen_by_identity_whatever_the_serving_order():
    data = FakeDataModule(test_size=50, seed=3)
    data.setup("test")
    served = data.splits["test"]
    assert not torch.equal(served.ids, torch.arange(50))  # served in a mixed order
    source = data.load("test")  # file order
    ids = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:10].sort().values
    images, labels = attack_sample(data, 10)
    assert torch.equal(images, source.images[ids]) and torch.equal(labels, source.targets[ids])
    order = torch.randperm(50, generator=torch.Generator().manual_seed(99))
    data.splits["test"] = TensorImageDataset(
        served.images[order], served.targets[order], served.ids[order]
    )
    again = attack_sample(data, 10)
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)


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
