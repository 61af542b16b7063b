"""``AdversarialClassifier``: cross-entropy on clean images plus adversarial ones made on the fly.

Each training batch gets adversarial examples (any attack of :data:`lab4.attacks.ATTACKS`; FGSM
by default) from the current network, made in eval mode so the attack does not touch the
BatchNorm statistics; the loss is ``clean_weight·CE(x) + adversarial_weight·CE(x')``
(Goodfellow et al. 2015 use 0.5/0.5; Madry et al. 2018 and Wong et al. 2020 train on the
adversarial images only, 0/1). Validation and test also report the accuracy under the training
attack (``{stage}/adv_acc``).

The usual recipes are settings of the registry's ``"pgd"`` (random start in the L∞ ball of radius
``budget``, then ``pgd_steps`` signed steps of ``epsilon``, each projected onto the ball):

- **FGSM-RS** (Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training",
  ICLR 2020, https://arxiv.org/abs/2001.03994): ``attack="pgd", pgd_steps=1, epsilon=10,
  budget=8``: δ ~ U(−ε, ε), one step of α = 1.25·ε, back onto the ball and [0, 1]
  (``configs/lab4/adversarial/cnn_fgsm_rs_eps8.yaml``);
- **PGD-k** (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
  ICLR 2018, https://arxiv.org/abs/1706.06083): ``attack="pgd", pgd_steps=7, epsilon=2,
  budget=8`` (``configs/lab4/adversarial/cnn_pgd7_eps8.yaml``).

Watch one-step training for catastrophic overfitting with
:class:`lab4.overfitting.CatastrophicOverfittingMonitor`.
"""

from __future__ import annotations

import torch
from jsonargparse.typing import NonNegativeFloat, PositiveInt
from torchmetrics.classification import MulticlassAccuracy

from common.classifier import ImageClassifier
from lab4.attacks import ATTACKS, AttackName, Epsilon255, eval_mode


class AdversarialClassifier(ImageClassifier):
    """:class:`common.classifier.ImageClassifier` trained on clean + adversarial images.

    Args:
        epsilon: attack step in 1/255 pixel units (FGSM without ``budget``: the whole
            perturbation; FGSM-RS: α, e.g. 10).
        attack: a name from :data:`lab4.attacks.ATTACKS`: ``"fgsm"`` (one step), ``"iterative"``
            (``pgd_steps`` steps of ``epsilon``) or ``"pgd"`` (the same from a random start in
            the L∞ ball of radius ``budget``, every step projected onto it). Every image takes
            every step.
        pgd_steps: steps of the iterative attacks (the name predates ``"iterative"``; kept so
            checkpoints saved before still load).
        budget: L∞ radius of the perturbation in 1/255 pixel units (e.g. 8); ``None`` (the
            default, and what older checkpoints load with): the attack's own (PGD:
            ``pgd_steps·epsilon/2``; FGSM and iterative: none, only the [0, 1] clipping).
        clean_weight, adversarial_weight: the loss weights. With ``clean_weight=0`` the clean
            images are only measured (``train/acc``, ``train/loss``: eval mode, no gradient), so
            the BatchNorm statistics and the gradient come from the adversarial images alone,
            as in Madry et al. and Wong et al.
        **kwargs: see :class:`common.classifier.ImageClassifier`.

    Example (FGSM-RS at ε = 8/255)::

        module = AdversarialClassifier(SimpleCNN(), num_classes=10, attack="pgd", pgd_steps=1,
                                       epsilon=10, budget=8, clean_weight=0, adversarial_weight=1)
        adversarial = module.attack(images, labels)  # what a training batch is trained on
    """

    def __init__(
        self,
        *args,
        epsilon: Epsilon255 = 1.0,
        attack: AttackName = "fgsm",
        pgd_steps: PositiveInt = 3,
        budget: Epsilon255 | None = None,
        clean_weight: NonNegativeFloat = 0.5,
        adversarial_weight: NonNegativeFloat = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(ignore=["model", "optimizer"])
        self.attack = ATTACKS[attack](
            self.model,
            epsilon / 255,
            steps=pgd_steps,
            budget=None if budget is None else budget / 255,
            stop_on_success=False,
        )
        self.clean_weight = clean_weight
        self.adversarial_weight = adversarial_weight
        num_classes = self.hparams.num_classes
        self.adversarial_accuracy = torch.nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                for s in ("train", "val", "test")
            }
        )

    def _adversarial_loss(self, batch, stage: str) -> torch.Tensor:
        images, targets = batch
        logits = self(self.attack(images, targets))
        self.adversarial_accuracy[f"{stage}_acc"].update(logits.detach(), targets)
        return self.criterion(logits, targets)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.clean_weight == 0:  # measured only: no backward, BatchNorm statistics untouched
            with eval_mode(self), torch.no_grad():
                self._shared_step(batch, batch_idx, "train")
            return self.adversarial_weight * self._adversarial_loss(batch, "train")
        clean = self._shared_step(batch, batch_idx, "train")
        adversarial = self._adversarial_loss(batch, "train")
        return self.clean_weight * clean + self.adversarial_weight * adversarial

    def validation_step(self, batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self._adversarial_loss(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self._adversarial_loss(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        super()._log_epoch(stage)
        self.log(f"{stage}/adv_acc", self.adversarial_accuracy[f"{stage}_acc"], prog_bar=True)
