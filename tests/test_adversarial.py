"""Adversarially-augmented training: the loss it optimises, the attacks it can use, its configs,
and its test run's reports."""

import csv

import pytest
import torch
import yaml
from torch import nn

from common.cli import main
from lab4.adversarial import AdversarialClassifier
from lab4.attacks import ATTACKS
from lab4.models import SimpleCNN
from tests.conftest import REPO

BASE = REPO / "configs/lab4/adversarial_cnn_cifar10.yaml"


def tiny_module(**options) -> AdversarialClassifier:
    """A 3-class module on 8×8 images whose BatchNorm running statistics never move (the order of
    forward passes is moot), runnable without a Trainer."""
    module = AdversarialClassifier(
        SimpleCNN((4, 8), num_classes=3, mean=[0.5] * 3, std=[0.25] * 3), num_classes=3, **options
    )
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = 0.0
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    module._trainer = type("Trainer", (), {"log_every_n_steps": 50})()  # read by the step
    return module


#: FGSM-RS (Wong et al. 2020) and PGD-k (Madry et al. 2018) at ε = 8/255, as in the configs
FGSM_RS = {"attack": "pgd", "pgd_steps": 1, "epsilon": 10, "budget": 8}
PGD_K = {"attack": "pgd", "pgd_steps": 2, "epsilon": 2, "budget": 8}


@pytest.mark.parametrize(
    ("options", "weights"),
    [
        *[({"attack": name, "epsilon": 2, "pgd_steps": 2}, (0.2, 0.8)) for name in ATTACKS],
        (FGSM_RS, (0.2, 0.8)),
        (FGSM_RS, (0.0, 1.0)),
        (PGD_K, (0.0, 1.0)),
    ],
    ids=[*ATTACKS, "fgsm_rs", "fgsm_rs_adversarial_only", "pgd_k_adversarial_only"],
)
def test_training_loss_is_the_weighted_clean_and_adversarial_loss(options, weights):
    torch.manual_seed(0)
    clean_weight, adversarial_weight = weights
    module = tiny_module(
        **options, clean_weight=clean_weight, adversarial_weight=adversarial_weight
    )
    images, targets = torch.rand(6, 3, 8, 8), torch.randint(0, 3, (6,))
    module.train()
    torch.manual_seed(1)  # PGD's random start
    loss = module.training_step((images, targets), 1)
    # independent of the module: the registry's attack on the network, every image every step
    budget = options.get("budget")
    attack = ATTACKS[options["attack"]](
        module.model,
        options["epsilon"] / 255,
        steps=options["pgd_steps"],
        budget=None if budget is None else budget / 255,
        stop_on_success=False,
    )
    torch.manual_seed(1)
    adversarial = attack(images, targets)
    module.train()
    expected = clean_weight * nn.functional.cross_entropy(module(images), targets) + (
        adversarial_weight * nn.functional.cross_entropy(module(adversarial), targets)
    )
    torch.testing.assert_close(loss, expected)
    assert module.model.training  # the attack restored the training mode
    assert not torch.equal(adversarial, images)


@pytest.mark.parametrize(("clean_weight", "train_forwards"), [(0.5, 2), (0.0, 1)])
def test_with_no_clean_weight_only_adversarial_images_train_the_network(
    clean_weight, train_forwards
):
    """Clean weight 0 (Madry; Wong et al.): the clean images are only measured, in eval mode, so
    BatchNorm sees one training forward pass (the adversarial one) and the clean pass has no
    graph."""
    module = tiny_module(**FGSM_RS, clean_weight=clean_weight, adversarial_weight=1.0)
    batch = torch.rand(6, 3, 8, 8), torch.randint(0, 3, (6,))
    module.train()
    module.training_step(batch, 0).backward()
    batch_norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.num_batches_tracked.item() == train_forwards for m in batch_norms)
    assert module.accuracy["train_acc"].update_count == 1  # clean accuracy still measured
    assert module.model.training


def test_fgsm_rs_starts_at_random_in_the_ball_and_takes_one_step_of_alpha():
    """FGSM-RS = δ ~ U(−ε, ε), then x₀ + α·sign(∇ₓ CE(f(x₀), y)) back onto the ε-ball and
    [0, 1], checked against autograd on the start point drawn from the same generator."""
    torch.manual_seed(0)
    epsilon, alpha = 8 / 255, 10 / 255
    module = tiny_module(**FGSM_RS)
    module.train()
    images = torch.rand(6, 3, 8, 8)
    images[0, 0, :2] = 0.0  # pixels at the bounds: the [0, 1] clipping matters
    images[1, 1, :2] = 1.0
    labels = torch.randint(0, 3, (6,))

    def fgsm_rs(seed: int) -> torch.Tensor:
        module.attack.generator = torch.Generator().manual_seed(seed)
        return module.attack(images, labels)

    adversarial = fgsm_rs(3)
    assert (adversarial - images).abs().max() <= epsilon + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.equal(fgsm_rs(3), adversarial)
    assert not torch.equal(fgsm_rs(4), adversarial)  # another generator, another start
    assert module.model.training
    # independent: the start point, the gradient there, the step and the projection
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(3))
    start = (images + (2 * noise - 1) * epsilon).clamp(0, 1).requires_grad_(True)
    model = module.model.eval()
    (gradient,) = torch.autograd.grad(
        nn.functional.cross_entropy(model(start), labels, reduction="sum"), start
    )
    stepped = start.detach() + alpha * gradient.sign()
    expected = (images + (stepped - images).clamp(-epsilon, epsilon)).clamp(0, 1)
    torch.testing.assert_close(adversarial, expected, rtol=0, atol=1e-6)
    inside = ((stepped - images).abs() <= epsilon) & (stepped >= 0) & (stepped <= 1)
    assert inside.any() and (~inside).any()  # both cases occur
    step = (adversarial - start.detach())[inside]
    torch.testing.assert_close(step, alpha * gradient.sign()[inside], rtol=0, atol=1e-6)


def test_a_checkpoint_saved_before_budget_existed_loads(tmp_path):
    module = tiny_module(attack="pgd", epsilon=2, pgd_steps=3)
    hyperparameters = dict(module.hparams)
    del hyperparameters["budget"]
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": hyperparameters,
            "pytorch-lightning_version": "2.5.0",
        },
        path,
    )
    loaded = AdversarialClassifier.load_from_checkpoint(
        path, model=SimpleCNN((4, 8), num_classes=3)
    )
    assert loaded.hparams.budget is None
    assert loaded.attack.budget is None and loaded.attack.options()["budget"] == 3 * 2 / 255 / 2
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in module.state_dict().items())


def contains(printed, changed) -> bool:
    """Whether every setting of an override file is in the printed config (``key+`` lists:
    each appended item is one of the printed list's)."""
    if isinstance(changed, dict):
        return all(
            any(contains(item, value) for item in printed[key[:-1]] for value in changed[key])
            if key.endswith("+")
            else key in printed and contains(printed[key], changed[key])
            for key in changed
        )
    return printed == changed


@pytest.mark.parametrize(
    "override",  # every override in the folder (report.yaml is the report command's config)
    sorted(
        p.name
        for p in (REPO / "configs/lab4/adversarial").glob("*.yaml")
        if p.name != "report.yaml"
    ),
)
def test_each_variant_overrides_the_base_config_and_trains(override, tmp_path, capsys):
    config = REPO / "configs/lab4/adversarial" / override
    args = ["fit", f"--config={BASE}", f"--config={config}"]
    with pytest.raises(SystemExit):
        main("lab4", [*args, "--print_config"])
    printed, changed = yaml.safe_load(capsys.readouterr().out), yaml.safe_load(config.read_text())
    assert contains(printed, changed)
    assert len(printed["trainer"]["callbacks"]) == 2 + ("callbacks+" in changed["trainer"])
    main(
        "lab4",
        [
            *args,
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            "--data=common.data.FakeDataModule",
            "--data.image_shape=[3, 32, 32]",
            "--data.batch_size=16",
            "--data.val_size=32",
        ],
    )


@pytest.mark.parametrize("argument", ["epsilon", "budget"])
def test_a_non_positive_epsilon_or_budget_fails_when_parsed(argument):
    with pytest.raises(SystemExit) as error:
        main(
            "lab4",
            ["fit", f"--config={BASE}", f"--model.init_args.{argument}=0", "--print_config"],
        )
    assert error.value.code != 0 and argument in str(error.value)


def test_adversarial_test_run_reports_robustness_and_ood(ood_folders, tmp_path):
    run_dir = tmp_path / "adversarial"
    data = [
        f"--data.data_dir={ood_folders}",
        "--data.val_size=4",
        "--data.fake_size=8",
        "--data.download=false",
    ]
    main("lab4", ["test", f"--config={BASE}", *data, f"--trainer.default_root_dir={run_dir}"])
    (version,) = run_dir.glob("version_*")
    with open(version / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["attack"], float(r["epsilon"])) for r in rows] == [
        (a, e) for a in ("fgsm", "iterative") for e in (1.0, 2.0, 4.0)
    ]
    assert all(0 <= float(r["robust_accuracy"]) <= 1 for r in rows)
    assert (version / "ood_metrics.csv").is_file() and (version / "robustness.md").is_file()
    metrics = (version / "metrics.csv").read_text()
    assert "test/adv_acc" in metrics and "robust/fgsm/eps2/robust_accuracy" in metrics
    table = tmp_path / "adversarial_training.md"
    runs = f"--runs={{'adv CNN': '{run_dir}', 'never run': '{tmp_path / 'none'}'}}"
    main("lab4", ["report", "--kind=adversarial", runs, f"--output={table}"])
    row, missing = table.read_text().splitlines()[-2:]
    assert row.startswith("| adv CNN | ") and row.count(" / ") == 6  # six attack cells
    assert missing.startswith("| never run | not run |")
