"""``AdversarialClassifier``: cross-entropy on clean images plus adversarial ones made on the fly.

Each training batch gets adversarial examples (any attack of :data:`lab4.attacks.ATTACKS`; FGSM
by default) from the current network, made in eval mode so the attack does not touch the
BatchNorm statistics; the loss is ``clean_weight·CE(x) + adversarial_weight·CE(x')``
(Goodfellow et al. 2015 use 0.5/0.5). Validation and test also report the accuracy under the
training attack (``{stage}/adv_acc``).
"""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torchmetrics.classification import MulticlassAccuracy

from common.classifier import ImageClassifier
from lab4.attacks import ATTACKS, AttackName


class AdversarialClassifier(ImageClassifier):
    """:class:`common.classifier.ImageClassifier` trained on clean + adversarial images.

    Args:
        epsilon: attack step in 1/255 pixel units (FGSM: the whole perturbation).
        attack: a name from :data:`lab4.attacks.ATTACKS`: ``"fgsm"`` (one step), ``"iterative"``
            (``pgd_steps`` steps of ``epsilon``) or ``"pgd"`` (the same from a random start,
            within its default L∞ ball of ``pgd_steps·epsilon/2``). Every image takes every step.
        pgd_steps: steps of the iterative attacks (the name predates ``"iterative"``; kept so
            checkpoints saved before still load).
        clean_weight, adversarial_weight: the loss weights.
        **kwargs: see :class:`common.classifier.ImageClassifier`.
    """

    def __init__(
        self,
        *args,
        epsilon: PositiveFloat = 1.0,
        attack: AttackName = "fgsm",
        pgd_steps: PositiveInt = 3,
        clean_weight: float = 0.5,
        adversarial_weight: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(ignore=["model", "optimizer"])
        self.attack = ATTACKS[attack](
            self.model, epsilon / 255, steps=pgd_steps, stop_on_success=False
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
