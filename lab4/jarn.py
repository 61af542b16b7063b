"""``JARNClassifier``: a classifier whose input gradients are trained to look like images.

Chan, Tay, Ong & Fu, "Jacobian Adversarially Regularized Networks for Robustness", ICLR 2020,
https://arxiv.org/abs/1912.10185. Each batch, with J = ∇ₓ CE(f(x), y) computed with
``create_graph=True`` (so a loss on J trains f: double backprop):

- the discriminator D (a small CNN) learns real images from adapted Jacobians A(J):
  ``L_D = BCE(D(x), 1) + BCE(D(A(J)), 0)``, A(J) detached;
- the classifier f and the adaptor A (a 1×1 convolution and tanh) learn to classify and to fool
  D: ``L_f = CE(f(x), y) + λ_adv · L_adv`` with ``L_adv = −log D(A(J))`` (non-saturating, the
  default) or ``log(1 − D(A(J)))`` (the paper's minimax form).

Robust networks have input gradients that look like images (Tsipras et al. 2019); JARN asks for
that directly, without adversarial examples (optionally with FGSM ones too: the paper's
JARN-AT1).
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from common.classifier import ImageClassifier
from common.models import find_normalize
from lab4.attacks import ATTACKS, Epsilon255
from lab4.models import JacobianAdaptor, JacobianDiscriminator


def discriminator_adam(params) -> torch.optim.Optimizer:
    """The discriminator's default optimizer: Adam as in DCGAN (lr 2e-4, β₁ 0.5)."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class JARNClassifier(ImageClassifier):
    """:class:`common.classifier.ImageClassifier` trained with JARN (see the module's docstring).

    Manual optimization, two optimizers: ``optimizer`` (and ``lr_schedule``, stepped every batch)
    for the classifier and the adaptor, ``discriminator_optimizer`` (constant lr) for D. Each
    batch: one forward of f, J by double backprop, a step of D on (x, A(J) detached), then a step
    of f and A against the updated D (DCGAN's order). Validation and test: clean accuracy, as
    ImageClassifier.

    Args:
        adaptor: A, maps Jacobians ``[N, C, H, W]`` to images (default: a 1×1
            :class:`~lab4.models.JacobianAdaptor`, which standardises each Jacobian first).
        discriminator: D, maps images ``[N, C, H, W]`` to logits ``[N]`` (default:
            :class:`~lab4.models.JacobianDiscriminator`).
        adversarial_weight: λ_adv (the paper: 1).
        adversarial_loss: ``"non_saturating"`` (−log D(A(J)): strong gradients while D wins,
            which is how this game starts) or ``"minimax"`` (log(1 − D(A(J))), the paper's).
        discriminator_optimizer: a callable ``params -> Optimizer`` for D.
        fgsm_epsilon: train on FGSM images of this ε (in 1/255; made in eval mode by
            :data:`lab4.attacks.ATTACKS` ``["fgsm"]``) instead of the clean ones: CE and J are
            taken at them, D's real images stay clean (JARN-AT1; the paper's ε: 8). ``None``: off.
        gradient_clip_val: clip the classifier's and adaptor's gradient norm to this (after fp16
            unscaling). Lightning refuses ``trainer.gradient_clip_val`` with manual optimization.
        adversarial_start_epoch: epochs of plain cross-entropy training (no Jacobian, no D)
            before the game starts — the official code switches the adversarial term on late in
            training; from the first step (0) the classifier can hardly learn at λ = 1.
        **kwargs: see :class:`common.classifier.ImageClassifier`.

    Logs, as epoch means: ``train/loss`` (the classification loss alone, as ``val/loss``),
    ``train/acc``, ``train/adv_loss`` (L_adv, before λ), ``train/disc_loss`` (L_D) and
    ``train/disc_acc`` (D's accuracy on real and adapted images). ``trainer.global_step`` counts
    both optimizers' steps (2 per batch: Lightning's rule, so ``trainer.max_steps`` is twice the
    batches); loggers' steps and ``log_every_n_steps`` count batches. A checkpoint holds f, A,
    D and both optimizers (training resumes); :func:`common.checkpoints.load_classifier_checkpoint`
    reads f alone from it. Tested on one device (fp32, bf16-mixed); under DDP the discriminator's
    step leaves f unused (``strategy: ddp_find_unused_parameters_true``, untested).

    Example::

        module = JARNClassifier(SimpleCNN(), num_classes=10, adversarial_weight=1.0)
        LabTrainer(max_epochs=12).fit(module, datamodule=OODDataModule())
    """

    def __init__(
        self,
        *args,
        adaptor: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        adversarial_weight: NonNegativeFloat = 1.0,
        adversarial_loss: Literal["non_saturating", "minimax"] = "non_saturating",
        discriminator_optimizer: OptimizerCallable = discriminator_adam,
        fgsm_epsilon: Epsilon255 | None = None,
        gradient_clip_val: PositiveFloat | None = None,
        adversarial_start_epoch: NonNegativeInt = 0,
        **kwargs,
    ) -> None:
        with warnings.catch_warnings():  # the base class saves every __init__ argument; see below
            warnings.filterwarnings("ignore", "Attribute '(adaptor|discriminator)' is an instance")
            super().__init__(*args, **kwargs)
        self.save_hyperparameters(
            ignore=["model", "optimizer", "adaptor", "discriminator", "discriminator_optimizer"]
        )
        self.automatic_optimization = False
        channels = len(find_normalize(self.model).mean)
        self.adaptor = adaptor if adaptor is not None else JacobianAdaptor(channels)
        self.discriminator = (
            discriminator
            if discriminator is not None
            else JacobianDiscriminator(in_channels=channels)
        )
        self.adversarial_weight = adversarial_weight
        self.adversarial_loss = adversarial_loss
        self.discriminator_optimizer = discriminator_optimizer
        self.attack = (
            None if fgsm_epsilon is None else ATTACKS["fgsm"](self.model, fgsm_epsilon / 255)
        )
        self.gradient_clip_val = gradient_clip_val
        self.adversarial_start_epoch = adversarial_start_epoch
        self.jarn_means = nn.ModuleDict(
            {name: MeanMetric() for name in ("adv_loss", "disc_loss", "disc_acc")}
        )

    def loss_and_jacobian(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss of a batch and J = ∇ₓ of the summed loss (each image's own
        gradient, up to BatchNorm's coupling in train mode), with the graph to differentiate J
        again. Updates the train loss and accuracy means."""
        images = images.detach().requires_grad_(True)
        logits = self(images)
        loss = self.criterion(logits, targets)
        (jacobians,) = torch.autograd.grad(loss * len(images), images, create_graph=True)
        self.mean_loss["train_loss"].update(loss.detach())
        self.accuracy["train_acc"].update(logits.detach(), targets)
        return loss, jacobians

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """L_adv of the classifier and adaptor, from D's logits on adapted Jacobians."""
        if self.adversarial_loss == "minimax":  # log(1 − D) = −BCE(D, 0)
            return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def training_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        classifier_optimizer, discriminator_optimizer = self.optimizers()
        inputs = images if self.attack is None else self.attack(images, targets).detach()
        if self.current_epoch < self.adversarial_start_epoch:  # warm-up: cross-entropy alone
            logits = self(inputs)
            loss = self.criterion(logits, targets)
            self.mean_loss["train_loss"].update(loss.detach())
            self.accuracy["train_acc"].update(logits.detach(), targets)
            self._step_classifier(classifier_optimizer, loss, batch_idx)
            return
        loss, jacobians = self.loss_and_jacobian(inputs, targets)
        adapted = self.adaptor(jacobians)

        # D: real images → 1, adapted Jacobians (detached: this step trains D alone) → 0
        logits = self.discriminator(torch.cat([images, adapted.detach()]))
        real_logits, fake_logits = logits.split(len(images))
        disc_loss = F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        self._check_finite(disc_loss, "discriminator")
        discriminator_optimizer.zero_grad()
        self.manual_backward(disc_loss)
        discriminator_optimizer.step()

        # f and A against the updated D; D's parameters frozen meanwhile (no gradients for them)
        with self.toggled_optimizer(classifier_optimizer):
            adv_loss = self.generator_loss(self.discriminator(adapted))
            self._step_classifier(
                classifier_optimizer, loss + self.adversarial_weight * adv_loss, batch_idx, loss
            )
        correct = torch.cat([real_logits > 0, fake_logits < 0]).float()
        self.jarn_means["adv_loss"].update(adv_loss.detach())
        self.jarn_means["disc_loss"].update(disc_loss.detach())
        self.jarn_means["disc_acc"].update(correct)

    def _step_classifier(
        self,
        optimizer: torch.optim.Optimizer,
        total: torch.Tensor,
        batch_idx: int,
        loss: torch.Tensor | None = None,
    ) -> None:
        """One step of f and A on ``total``, the lr schedule's step, and the step log of the
        classification ``loss`` (default: ``total``)."""
        self._check_finite(total, "classifier")
        optimizer.zero_grad()
        self.manual_backward(total)
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        if batch_idx % self.trainer.log_every_n_steps == 0:
            shown = total if loss is None else loss
            self.log("train/loss_step", shown.detach(), prog_bar=True)

    def _check_finite(self, loss: torch.Tensor, which: str) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"JARN's {which} loss is {loss.item()} at step {self.global_step}: lower the "
                "learning rates or adversarial_weight, or set the model's gradient_clip_val; "
                "checkpoints saved so far are kept"
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # called by Lightning inside optimizer.step(), after fp16 unscaling
        if self.gradient_clip_val is not None and optimizer is self.trainer.optimizers[0]:
            self.clip_gradients(optimizer, self.gradient_clip_val, "norm")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.log_dict({f"train/{name}": mean for name, mean in self.jarn_means.items()})

    def parameter_groups(self) -> list[dict]:
        """What the classifier's optimizer trains: the network and the adaptor (not D)."""
        modules = (self.model, self.adaptor)
        return [{"params": [p for m in modules for p in m.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        configured = super().configure_optimizers()  # the classifier's optimizer and schedule
        if isinstance(configured, dict):
            # the scheduler alone: Lightning ignores (and warns about) "interval" in manual mode
            optimizer, schedulers = (
                configured["optimizer"],
                [configured["lr_scheduler"]["scheduler"]],
            )
        else:
            optimizer, schedulers = configured, []
        discriminator = self.discriminator_optimizer(self.discriminator.parameters())
        return [optimizer, discriminator], schedulers
