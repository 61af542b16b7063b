"""Knowledge distillation: a small student network learns from a frozen, trained teacher."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from common.checkpoints import CheckpointError, load_classifier_checkpoint
from common.classifier import ImageClassifier
from common.losses import DistillationLoss
from common.models import find_normalize


class DistillationClassifier(ImageClassifier):
    """An :class:`ImageClassifier` whose student (``model``) is trained on the loss of Hinton,
    Vinyals & Dean ("Distilling the Knowledge in a Neural Network", 2015,
    https://arxiv.org/abs/1503.02531), :func:`common.losses.distillation_loss`:

        α · T² · KL(softmax(z_teacher / T) ‖ softmax(z_student / T)) + (1 − α) · CE(z_student, y)

    The teacher sees the student's batch, after the DataModule's augmentation; each network
    keeps its own ``Normalize`` (both take the same [0, 1] images). It is frozen: no gradients,
    always in eval mode (its batch-norm statistics never move), forward under ``no_grad``.
    Validation and test evaluate the student alone, as :class:`ImageClassifier` does; the
    teacher's accuracy on the same images (with the same ``test_time_flip``) is logged beside
    it: ``val/teacher_acc`` once (first validation epoch: the teacher does not change) and
    ``test/teacher_acc``. The logged training loss is the distillation loss.

    Checkpoints hold the student only: the teacher's weights are left out when saving and
    re-loaded from ``teacher_checkpoint`` (or the teacher's own pretrained weights) when the
    module is built. A distilled checkpoint therefore loads like any classifier's:
    ``load_classifier_checkpoint(student_network, path)``, or ``python -m lab1 test`` with the
    configs of the fit and ``--ckpt_path best``.

    Args:
        model: the student, any network of the project (trained).
        teacher: the teacher network, e.g. ``common.models.CifarResNet`` (weights from
            ``teacher_checkpoint``) or ``common.models.pretrained.ResNet20`` (its own weights).
        num_classes: classes of the data (the teacher must have as many outputs).
        teacher_checkpoint: a ``fit`` checkpoint of any classifier of the project whose network
            is ``teacher``; ``None``: the teacher comes with its weights.
        temperature: T > 0; T > 1 softens both distributions (4 is common on CIFAR).
        alpha: weight α of the soft (teacher) term; 0 is plain cross-entropy training.
        **kwargs: see :class:`ImageClassifier` (optimizer, schedule, ``label_smoothing`` of the
            cross-entropy term, ``channels_last`` for both networks, ``test_time_flip``).

    Example:
        >>> from common.models import CifarResNet
        >>> teacher = CifarResNet((3, 3, 3), mean=[0.5] * 3, std=[0.25] * 3)  # trained, in practice
        >>> module = DistillationClassifier(CifarResNet((1, 1, 1)), teacher, num_classes=10)
    """

    def __init__(
        self,
        model: nn.Module,
        teacher: nn.Module,
        num_classes: int,
        teacher_checkpoint: str | None = None,
        temperature: float = 4.0,
        alpha: float = 0.9,
        **kwargs: Any,
    ) -> None:
        with warnings.catch_warnings():  # the base saves hyperparameters before `teacher` is
            warnings.filterwarnings("ignore", message=".*'teacher' is an instance of `nn.Module`")
            super().__init__(model, num_classes, **kwargs)
        self.save_hyperparameters(ignore=["model", "teacher", "optimizer"])
        if teacher_checkpoint is not None:
            try:
                load_classifier_checkpoint(teacher, teacher_checkpoint)
            except CheckpointError as error:
                raise CheckpointError(f"teacher_checkpoint: {error}") from None
        if not find_normalize(teacher).is_set:
            raise ValueError(
                f"the teacher {type(teacher).__name__} is untrained: give teacher_checkpoint (a "
                "`fit` checkpoint) or a network that loads its own weights"
            )
        self.teacher = teacher.requires_grad_(False).eval()
        self.teacher.to(memory_format=self.memory_format)
        self.distillation = DistillationLoss(temperature, alpha, kwargs.get("label_smoothing", 0.0))
        self.teacher_accuracy = nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                for s in ("val", "test")
            }
        )
        self.teacher_val_logged = False

    def on_fit_start(self) -> None:
        # Lightning warns of every module in eval mode as training starts: the teacher's are
        # meant to be. Silenced for exactly their count, so a student's would still be reported.
        frozen = sum(1 for _ in self.teacher.modules())
        warnings.filterwarnings("ignore", rf"Found {frozen} module\(s\) in eval mode")

    def train(self, mode: bool = True) -> DistillationClassifier:
        super().train(mode)
        self.teacher.eval()  # `model.train()` (by Lightning or a user) must not switch it
        return self

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
        images = images.contiguous(memory_format=self.memory_format)
        logits = self.teacher(images)
        if flip:
            logits = (logits + self.teacher(images.flip(-1))) / 2
        return logits

    def training_loss(
        self, images: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The distillation loss: the teacher sees the same augmented batch as the student."""
        teacher_logits = self.teacher_logits(images)
        if teacher_logits.shape != logits.shape:
            raise ValueError(
                f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                f"{tuple(logits.shape)} differ: both networks need num_classes outputs"
            )
        return self.distillation(logits, teacher_logits, targets)

    def _update_teacher_accuracy(self, batch, stage: str) -> None:
        images, targets = batch
        logits = self.teacher_logits(images, flip=self.test_time_flip)
        self.teacher_accuracy[f"{stage}_acc"].update(logits, targets)

    def validation_step(self, batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if not self.teacher_val_logged and not self.trainer.sanity_checking:
            self._update_teacher_accuracy(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self._update_teacher_accuracy(batch, "test")

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self.teacher_val_logged and not self.trainer.sanity_checking:
            self.log("val/teacher_acc", self.teacher_accuracy["val_acc"])
            self.teacher_val_logged = True

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.log("test/teacher_acc", self.teacher_accuracy["test_acc"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("teacher.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the teacher was re-loaded when the module was built: its weights complete the state
        teacher = {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}
        checkpoint["state_dict"] = {**teacher, **checkpoint["state_dict"]}
