"""Fine-tuning a trained classifier on a new dataset under a named freezing strategy.

The network must expose ``features`` (a ``Sequential``: a stem, then stages that are themselves
``Sequential``s, as :class:`common.models.CifarResNet`) and ``classifier`` ending in a
``Linear`` head. The head is replaced by one for the new classes, then, by ``strategy``:

- ``head``: train the new head only (the backbone is a fixed feature extractor);
- ``last_block``: the last stage and the head;
- ``all_but_stem``: everything but the stem (the input convolution and its batch norm);
- ``full``: everything.

Frozen modules stay in eval mode, so their batch-norm statistics do not drift towards the new
data. ``backbone_lr_factor`` < 1 gives the trainable backbone a smaller learning rate than the
head (discriminative learning rates).
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from common.checkpoints import load_classifier_checkpoint
from common.classifier import ImageClassifier

Strategy = Literal["head", "last_block", "all_but_stem", "full"]
STRATEGIES: tuple[str, ...] = ("head", "last_block", "all_but_stem", "full")


def trainable_backbone(features: nn.Sequential, strategy: Strategy) -> list[nn.Module]:
    """The children of ``features`` that ``strategy`` trains (the head is always trained)."""
    children = list(features)
    stage_index = [i for i, child in enumerate(children) if isinstance(child, nn.Sequential)]
    if not stage_index:
        raise ValueError("fine-tuning needs `features` made of a stem and Sequential stages")
    if strategy == "head":
        return []
    if strategy == "last_block":
        return [children[stage_index[-1]]]
    if strategy == "all_but_stem":
        return children[stage_index[0] :]
    if strategy == "full":
        return children
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")


class FineTuneClassifier(ImageClassifier):
    """An :class:`ImageClassifier` that starts from a trained network and fine-tunes part of it.

    Args:
        model: the source network (e.g. ``common.models.pretrained.ResNet20`` with weights).
        num_classes: classes of the new data; the head is replaced by a fresh one of this size.
        checkpoint: optional ``fit`` checkpoint of ``model`` (an ``ImageClassifier``) to start from.
        strategy: which part is trained, see the module docstring.
        backbone_lr_factor: learning rate of the trainable backbone relative to the head's.
        **kwargs: see :class:`ImageClassifier` (optimizer, schedule, label smoothing, …).

    The source network keeps its own normalisation statistics: they are part of what it learned.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        checkpoint: str | None = None,
        strategy: Strategy = "full",
        backbone_lr_factor: float = 1.0,
        **kwargs,
    ) -> None:
        if checkpoint is not None:
            load_classifier_checkpoint(model, checkpoint)
        head = model.classifier[-1]
        if not isinstance(head, nn.Linear):
            raise ValueError(f"the classifier must end in nn.Linear, not {type(head).__name__}")
        model.classifier[-1] = nn.Linear(head.in_features, num_classes)
        super().__init__(model, num_classes, **kwargs)
        self.strategy = strategy
        self.backbone_lr_factor = backbone_lr_factor
        self.trained_backbone = trainable_backbone(model.features, strategy)
        self.frozen = [m for m in model.features if all(m is not t for t in self.trained_backbone)]
        for module in self.frozen:
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> FineTuneClassifier:
        super().train(mode)
        for module in self.frozen:
            module.eval()  # batch-norm statistics of the frozen part stay those of the source
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning restores each submodule's saved mode around validation rather than calling
        # `train()`, and its first snapshot is taken with everything in train mode
        for module in self.frozen:
            module.eval()

    def parameter_groups(self) -> list[dict]:
        head = {"params": list(self.model.classifier.parameters())}
        backbone = [p for m in self.trained_backbone for p in m.parameters()]
        if not backbone:
            return [head]
        return [head, {"params": backbone, "lr_factor": self.backbone_lr_factor}]
