"""JARN: what each optimizer trains, the Jacobian it regularises (double backprop), that it
reduces to plain training at λ_adv = 0, and that it fits, tests and checkpoints like the rest."""

import copy
from functools import partial

import lightning as L
import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from common.checkpoints import load_classifier_checkpoint
from common.classifier import ImageClassifier
from common.cli import main
from lab4.attacks import ATTACKS
from lab4.jarn import JARNClassifier
from lab4.models import JacobianDiscriminator, SimpleCNN
from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step`")

sgd = partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4)


def network(seed: int = 0) -> SimpleCNN:
    torch.manual_seed(seed)
    return SimpleCNN((4, 8), num_classes=3, mean=[0.5] * 3, std=[0.25] * 3)


def jarn(net=None, **kwargs) -> JARNClassifier:
    torch.manual_seed(1)
    kwargs.setdefault("optimizer", sgd)
    return JARNClassifier(
        net or network(), num_classes=3, discriminator=JacobianDiscriminator((4, 8)), **kwargs
    )


def loader(n: int = 8, batch_size: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(n, 3, 32, 32, generator=generator)
    targets = torch.randint(0, 3, (n,), generator=generator)
    return DataLoader(TensorDataset(images, targets), batch_size=batch_size)


def trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    return L.Trainer(**(defaults | kwargs))


class StepRecorder(L.Callback):
    """The names of the parameters each optimizer's step changed, step by step."""

    def __init__(self) -> None:
        self.moved: dict[int, list[set[str]]] = {0: [], 1: []}

    def on_train_start(self, trainer, pl_module) -> None:
        before = {}

        def pre(optimizer, args, kwargs):
            before.update({n: p.detach().clone() for n, p in pl_module.named_parameters()})

        for index, optimizer in enumerate(trainer.optimizers):

            def post(optimizer, args, kwargs, index=index):
                changed = {
                    n for n, p in pl_module.named_parameters() if not torch.equal(p, before[n])
                }
                self.moved[index].append(changed)

            optimizer.register_step_pre_hook(pre)
            optimizer.register_step_post_hook(post)


def test_each_optimizer_moves_all_of_its_parameters_and_nothing_else(tmp_path):
    module, recorder = jarn(lr_schedule="cosine"), StepRecorder()
    names = [n for n, _ in module.named_parameters()]
    own = {
        0: {n for n in names if n.startswith(("model.", "adaptor."))},
        1: {n for n in names if n.startswith("discriminator.")},
    }
    assert own[0] and own[1] and own[0] | own[1] == set(names)
    fit = trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[recorder])
    fit.fit(module, loader())
    # two batches: the discriminator's step, then the classifier's (with the adaptor), each time
    assert recorder.moved == {0: [own[0], own[0]], 1: [own[1], own[1]]}
    assert fit.lr_scheduler_configs[0].scheduler.last_epoch == 2  # stepped once per batch
    assert fit.global_step == 4  # Lightning counts both optimizers' steps


@pytest.mark.parametrize("fgsm_epsilon", [None, 8.0])
def test_the_adaptor_gets_the_input_gradient_with_its_graph(fgsm_epsilon, tmp_path):
    module = jarn(fgsm_epsilon=fgsm_epsilon)
    reference = copy.deepcopy(module.model)  # the weights of the first step
    images, targets = next(iter(loader()))
    seen = {}

    def adaptor_input(layer, inputs):
        (jacobians,) = inputs
        seen["jacobians"] = jacobians.detach().clone()
        weight = module.model.features[1][0].weight  # the first convolution's
        (seen["dj_dw"],) = torch.autograd.grad(jacobians.square().sum(), weight, retain_graph=True)

    def discriminator_input(layer, inputs):
        seen.setdefault("discriminator", inputs[0].detach().clone())

    module.adaptor.register_forward_pre_hook(adaptor_input)
    module.discriminator.register_forward_pre_hook(discriminator_input)
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(module, loader())
    # independent: the attack on the network as it was, then CE's gradient at its images
    inputs = (
        images if fgsm_epsilon is None else ATTACKS["fgsm"](reference, 8 / 255)(images, targets)
    )
    assert not torch.equal(inputs, images) or fgsm_epsilon is None
    inputs = inputs.clone().requires_grad_(True)
    reference.train()
    loss = F.cross_entropy(reference(inputs), targets, reduction="sum")
    (expected,) = torch.autograd.grad(loss, inputs)
    torch.testing.assert_close(seen["jacobians"], expected)
    assert seen["dj_dw"].abs().sum() > 0  # J depends on the classifier's weights
    torch.testing.assert_close(seen["discriminator"][:4], images)  # D's real images: clean


@pytest.mark.parametrize("adversarial_loss", ["non_saturating", "minimax"])
def test_the_adversarial_term_trains_the_classifier_through_its_jacobian(adversarial_loss):
    module = jarn(adversarial_loss=adversarial_loss)
    images, targets = next(iter(loader()))
    _, jacobians = module.loss_and_jacobian(images, targets)
    fake_logits = module.discriminator(module.adaptor(jacobians))
    adv_loss = module.generator_loss(fake_logits)
    probability = torch.sigmoid(fake_logits.detach())  # D(A(J))
    expected = (
        -torch.log(probability)
        if adversarial_loss == "non_saturating"
        else torch.log1p(-probability)
    ).mean()
    torch.testing.assert_close(adv_loss.detach(), expected)
    weight = module.model.features[1][0].weight
    (gradient,) = torch.autograd.grad(adv_loss, weight)
    assert gradient.abs().sum() > 0


@pytest.mark.parametrize("adversarial_weight", [0.0, 1.0])
def test_without_the_adversarial_term_a_step_is_plain_cross_entropy_training(
    adversarial_weight, tmp_path
):
    plain = ImageClassifier(network(), num_classes=3, optimizer=sgd, lr_schedule="cosine")
    trainer(tmp_path / "plain", max_steps=1, limit_val_batches=0).fit(plain, loader())
    module = jarn(network(), adversarial_weight=adversarial_weight, lr_schedule="cosine")
    trainer(tmp_path / "jarn", max_steps=2, limit_val_batches=0).fit(module, loader())
    after, expected = module.model.state_dict(), plain.model.state_dict()
    assert after.keys() == expected.keys()
    if adversarial_weight == 0:
        for key in expected:  # weights, and BatchNorm statistics (one forward each)
            torch.testing.assert_close(after[key], expected[key], rtol=1e-5, atol=1e-6)
    else:  # the test can fail: λ_adv > 0 changes the step
        assert not torch.allclose(after["features.1.0.weight"], expected["features.1.0.weight"])


def test_gradient_clipping_bounds_the_classifier_step(tmp_path):
    module = jarn(optimizer=partial(torch.optim.SGD, lr=1.0), gradient_clip_val=1e-3)
    start = torch.cat([p.detach().flatten() for p in module.parameter_groups()[0]["params"]])
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(module, loader())
    end = torch.cat([p.detach().flatten() for p in module.parameter_groups()[0]["params"]])
    assert 0 < (end - start).norm() <= 1e-3 * (1 + 1e-4)  # lr · clip


def test_fit_test_and_checkpoint_round_trip(tmp_path):
    module = jarn()
    run = trainer(tmp_path, fast_dev_run=True)
    run.fit(module, loader(), loader())
    logged = run.callback_metrics
    for key in ("train/loss", "train/acc", "train/adv_loss", "train/disc_loss", "train/disc_acc"):
        assert torch.isfinite(logged[key]), key
    assert 0 <= logged["train/disc_acc"] <= 1
    (results,) = run.test(module, loader(), verbose=False)
    assert 0 <= results["test/acc"] <= 1
    path = tmp_path / "jarn.ckpt"
    run.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert len(checkpoint["optimizer_states"]) == 2
    prefixes = {key.split(".")[0] for key in checkpoint["state_dict"]}
    assert prefixes == {"model", "adaptor", "discriminator"}  # f, A and D: training resumes
    restored = JARNClassifier.load_from_checkpoint(
        path, model=network(5), discriminator=JacobianDiscriminator((4, 8)), weights_only=True
    )
    for key, value in module.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[key], value)
    classifier = network(5)  # the network alone, as other configs and tools read it
    load_classifier_checkpoint(classifier, str(path))
    for key, value in module.model.state_dict().items():
        torch.testing.assert_close(classifier.state_dict()[key], value)


def test_the_config_fits_and_tests_its_best_checkpoint(tmp_path):
    args = [
        f"--config={REPO / 'configs/lab4/jarn_cnn_cifar10.yaml'}",
        "--trainer.accelerator=cpu",
        "--trainer.precision=32-true",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks=[]",  # the OOD and attack reports need the real data
        "--model.init_args.model.init_args.widths=[4, 8]",
        "--data=common.data.FakeDataModule",
        "--data.batch_size=8",
        "--data.train_size=32",
        "--data.val_size=8",
        "--data.test_size=8",
    ]
    main("lab4", ["fit", *args, "--trainer.max_epochs=1"])
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    main("lab4", ["test", *args, "--ckpt_path=best"])


def test_warm_up_epochs_train_the_classifier_alone_then_the_game_starts(tmp_path):
    module = jarn(adversarial_start_epoch=1)
    start = copy.deepcopy(module.state_dict())
    trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(module, loader())

    def moved(prefix: str) -> bool:
        return any(
            not torch.equal(value, start[name])
            for name, value in module.state_dict().items()
            if name.startswith(prefix) and value.is_floating_point()
        )

    assert moved("model.") and not moved("discriminator.") and not moved("adaptor.")
    assert module.jarn_means["disc_loss"].update_count == 0  # no game in the warm-up
    trainer(tmp_path, max_epochs=2, limit_val_batches=0).fit(module, loader())
    assert moved("discriminator.") and moved("adaptor.")
