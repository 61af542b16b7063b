"""``CatastrophicOverfittingMonitor``: PGD accuracy on a fixed validation batch after every
validation epoch, and a warning (optionally a stop) when it collapses.

Catastrophic overfitting (Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial
training", ICLR 2020, https://arxiv.org/abs/2001.03994, Sec. 5.2): during one-step (FGSM)
adversarial training the accuracy under PGD can fall from its plateau to ~0 within an epoch while
clean accuracy goes on rising — the network has learnt to defeat the one-step attack only. The
training attack's own accuracy (``val/adv_acc``) does not show it; a multi-step attack does.
"""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lab4.attacks import ATTACKS


class CatastrophicOverfittingMonitor(L.Callback):
    """PGD-k accuracy on a fixed, seeded choice of validation images at the end of every
    validation epoch (not the sanity check), logged as ``val/pgd_acc`` (progress bar), with the
    clean accuracy of the same images as ``val/pgd_clean_acc``.

    The attack (:data:`lab4.attacks.ATTACKS` ``"pgd"``, Madry et al. 2018) starts from the same
    seeded random point every epoch, so epochs differ only by the network. An image counts as
    robust if no iterate fooled it (each image stops at its first success).

    **Collapse**: PGD accuracy below ``collapse_ratio ×`` its best of the earlier epochs while the
    clean accuracy stays above ``collapse_ratio ×`` its best (both falling is divergence, not
    catastrophic overfitting), judged once the best PGD accuracy has reached ``min_best_pgd_acc``
    (at chance level a fall is noise). It gives a warning; with ``stop_on_collapse`` the run also
    stops after this epoch. To keep the last robust network as ``best.ckpt`` (Wong et al.'s early
    stopping), monitor ``val/pgd_acc`` in the checkpoint (``checkpoint.monitor``).

    Every process attacks the same images (collective only: the mean of the logged values, the
    same on every process, and the stop decision), so it runs under DDP and on any device;
    under ``trainer.precision``'s autocast, like the training attack.
    The best accuracies travel in checkpoints, so a resumed run keeps judging against them.

    Args:
        radius: L∞ radius ε in 1/255 pixel units (8: the CIFAR-10 standard).
        steps: PGD steps k.
        step_size: α in 1/255 pixel units; ``None``: ``radius / 4``.
        num_images: validation images attacked (all of them if the split is smaller).
        seed: seeds the choice of images and the random start.
        collapse_ratio: the fraction of the best accuracies that defines a collapse.
        min_best_pgd_acc: no collapse is judged before the best PGD accuracy reaches this.
        stop_on_collapse: set ``trainer.should_stop`` on a collapse (and say so in the log).

    Example (in a config's ``trainer.callbacks``)::

        - class_path: lab4.overfitting.CatastrophicOverfittingMonitor
          init_args: {radius: 8, steps: 10, stop_on_collapse: true}
    """

    def __init__(
        self,
        radius: PositiveFloat = 8.0,
        steps: PositiveInt = 10,
        step_size: PositiveFloat | None = None,
        num_images: PositiveInt = 512,
        seed: int = 0,
        collapse_ratio: float = 0.5,
        min_best_pgd_acc: float = 0.1,
        stop_on_collapse: bool = False,
    ) -> None:
        if not 0 < collapse_ratio < 1:
            raise ValueError(f"collapse_ratio must be in (0, 1), got {collapse_ratio}")
        self.radius, self.steps, self.num_images, self.seed = radius, steps, num_images, seed
        self.step_size = radius / 4 if step_size is None else step_size
        self.collapse_ratio, self.min_best_pgd_acc = collapse_ratio, min_best_pgd_acc
        self.stop_on_collapse = stop_on_collapse
        self.best = {"pgd_acc": 0.0, "clean_acc": 0.0}
        self.sample: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(radius=self.radius, steps=self.steps)

    def state_dict(self) -> dict[str, float]:
        return dict(self.best)

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.best.update(state_dict)

    def validation_images(self, trainer: L.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 images and labels attacked every epoch: a seeded random choice of the
        DataModule's validation split (a :class:`common.data.datamodule.ImageDataModule`),
        made once."""
        if self.sample is None:
            splits = getattr(trainer.datamodule, "splits", {})
            if "val" not in splits or len(splits["val"]) == 0:
                raise ValueError(
                    "CatastrophicOverfittingMonitor needs an ImageDataModule with a validation "
                    "split (data.val_size > 0)"
                )
            dataset = splits["val"]
            generator = torch.Generator().manual_seed(self.seed)
            index = torch.randperm(len(dataset), generator=generator)[: self.num_images]
            self.sample = dataset[index.sort().values]
        return self.sample

    def measure(self, trainer: L.Trainer, model: torch.nn.Module) -> dict[str, float]:
        """Clean and PGD accuracy of ``model`` (any module mapping [0, 1] images to logits) on
        :meth:`validation_images`."""
        images, labels = self.validation_images(trainer)
        data, device = trainer.datamodule, next(model.parameters()).device
        attack = ATTACKS["pgd"](
            model,
            self.step_size / 255,
            steps=self.steps,
            budget=self.radius / 255,
            generator=torch.Generator().manual_seed(self.seed),
        )
        clean = robust = 0
        # the validation loop runs in inference mode: the attack needs gradients and tensors
        # made outside it
        with torch.inference_mode(False), trainer.precision_plugin.forward_context():
            batches = zip(
                data.preprocessed_batches(images, device),
                labels.split(data.batch_size),
                strict=True,
            )
            for batch, batch_labels in batches:
                result = attack.run(batch, batch_labels.to(device))
                clean += (result.prediction_before == result.labels).sum().item()
                robust += (result.prediction_after == result.labels).sum().item()
        return {"pgd_acc": robust / len(labels), "clean_acc": clean / len(labels)}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        accuracy = self.measure(trainer, pl_module)
        # the same value on every process: the mean over them changes nothing and keeps
        # Lightning from warning about unsynchronised epoch metrics
        options = {"on_epoch": True, "sync_dist": True}
        pl_module.log("val/pgd_acc", accuracy["pgd_acc"], prog_bar=True, **options)
        pl_module.log("val/pgd_clean_acc", accuracy["clean_acc"], **options)
        collapsed = self.collapsed(accuracy)
        self.best = {key: max(self.best[key], value) for key, value in accuracy.items()}
        if trainer.state.fn != "fit":
            return
        if collapsed:
            rank_zero_warn(
                f"catastrophic overfitting at epoch {trainer.current_epoch}: PGD-{self.steps} "
                f"accuracy (ε = {self.radius:g}/255) fell to {accuracy['pgd_acc']:.3f} from a best "
                f"of {self.best['pgd_acc']:.3f} while clean accuracy is "
                f"{accuracy['clean_acc']:.3f}; keep the network of the best val/pgd_acc "
                "(checkpoint.monitor: val/pgd_acc)"
            )
        # every process takes part (each decides alike; the reduction keeps them in step if
        # rounding differs between devices)
        if self.stop_on_collapse and trainer.strategy.reduce_boolean_decision(collapsed, all=False):
            trainer.should_stop = True
            rank_zero_info(
                "CatastrophicOverfittingMonitor: stopping the run after this epoch "
                "(stop_on_collapse); the checkpoints saved so far are kept"
            )

    def collapsed(self, accuracy: dict[str, float]) -> bool:
        """Whether ``accuracy`` (``pgd_acc``, ``clean_acc``) is a collapse against the best
        accuracies so far (see the class docstring)."""
        best_pgd, best_clean = self.best["pgd_acc"], self.best["clean_acc"]
        return (
            best_pgd >= self.min_best_pgd_acc
            and accuracy["pgd_acc"] < self.collapse_ratio * best_pgd
            and accuracy["clean_acc"] >= self.collapse_ratio * best_clean
        )
