"""``AdversarialClassifier``: cross-entropy on clean images plus adversarial ones made on the fly.

Each training batch gets FGSM (or PGD) examples from the current network (made in eval mode, so
the attack does not touch the BatchNorm statistics); the loss is
``clean_weight·CE(x) + adversarial_weight·CE(x')`` (Goodfellow et al. 2015 use 0.5/0.5).
Validation and test also report the accuracy under the training attack (``{stage}/adv_acc``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics.classification import MulticlassAccuracy

from common.classifier import ImageClassifier
from lab4.attacks import perturb


class AdversarialClassifier(ImageClassifier):
    """:class:`common.classifier.ImageClassifier` trained on clean + adversarial images.

    Args:
        epsilon: attack step in 1/255 pixel units (FGSM: the whole perturbation).
        attack: ``"fgsm"`` (one step) or ``"pgd"`` (``pgd_steps`` steps of ``epsilon`` from a
            random start, within an L∞ ball of ``pgd_steps·epsilon/2``).
        pgd_steps: PGD iterations.
        clean_weight, adversarial_weight: the loss weights.
        **kwargs: see :class:`common.classifier.ImageClassifier`.
    """

    def __init__(
        self,
        *args,
        epsilon: float = 1.0,
        attack: Literal["fgsm", "pgd"] = "fgsm",
        pgd_steps: int = 3,
        clean_weight: float = 0.5,
        adversarial_weight: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters(ignore=["model", "optimizer"])
        self.epsilon = epsilon / 255
        self.attack = attack
        self.pgd_steps = pgd_steps
        self.clean_weight = clean_weight
        self.adversarial_weight = adversarial_weight
        num_classes = self.hparams.num_classes
        self.adversarial_accuracy = torch.nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                for s in ("train", "val", "test")
            }
        )

    def adversarial_examples(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.attack == "fgsm":
            return perturb(self.model, images, targets, self.epsilon, stop_on_success=False)[0]
        budget = self.pgd_steps * self.epsilon / 2
        return perturb(
            self.model, images, targets, self.epsilon, self.pgd_steps, budget,
            random_start=True, stop_on_success=False,
        )[0]  # fmt: skip

    def _adversarial_loss(self, batch, stage: str) -> torch.Tensor:
        images, targets = batch
        adversarial = self.adversarial_examples(images, targets)
        logits = self(adversarial)
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
