"""``CharLanguageModel``: next-character training of any ``lab2.models`` network.

AdamW with weight decay on matrices only (embeddings and weights; not biases or LayerNorm
gains, which decay would pull to zero for no regularising gain), a linear warm-up then a cosine
decay to ``min_lr_ratio · lr``, stepped every batch; gradient clipping is the Trainer's
(``trainer.gradient_clip_val``). Losses are in nats per character; ``val/bpc`` is bits per
character and ``val/ppl`` the perplexity, ``exp(loss)``.

At every validation end a sample (same prompt, same seed each time) goes into
``<run>/version_N/samples/step_<S>.txt`` and W&B, so the style can be watched as it emerges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torchmetrics import MeanMetric

from common.commands import write_text_atomic
from lab2.data import TextError, Vocabulary
from lab2.models import CharGPT
from lab2.sampling import sample_texts, warpers

#: the prompt of the course's samples
DANTE_PROMPT = "Nel mezzo del cammin di nostra vita"


class CharLanguageModel(L.LightningModule):
    """Args:
    vocabulary: the characters of the training text (passed by the CLI from the data; kept
        in the checkpoint, so sampling needs no data).
    model: the network, built with the vocabulary's size (in YAML: ``class_path`` +
        ``init_args`` without ``vocab_size``).
    lr, betas, weight_decay: AdamW's.
    warmup_steps: linear warm-up from 0 to ``lr``.
    min_lr_ratio: the cosine schedule ends at ``min_lr_ratio · lr``.
    sample_prompt, sample_length, sample_temperature, sample_top_k, sample_seed: the sample
        written at every validation end (``sample_length`` 0: none).
    """

    def __init__(
        self,
        vocabulary: str,
        model: Callable[[int], nn.Module] = CharGPT,
        lr: PositiveFloat = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.1,
        warmup_steps: NonNegativeInt = 100,
        min_lr_ratio: float = 0.1,
        sample_prompt: str = DANTE_PROMPT,
        sample_length: NonNegativeInt = 300,
        sample_temperature: PositiveFloat = 0.8,
        sample_top_k: PositiveInt | None = None,
        sample_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.vocabulary = Vocabulary(vocabulary)
        self.model = model(len(vocabulary))
        warpers(sample_temperature, sample_top_k, None)  # bad settings fail before training
        try:
            self.vocabulary.encode(sample_prompt if sample_length else "")
        except TextError as error:
            raise TextError(f"sample_prompt: {error}") from None
        stages = ("train", "val", "test")
        self.mean_loss = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in stages})

    @property
    def context(self) -> int:
        return self.model.context

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule
        if data is not None and data.context > self.context:
            raise TextError(
                f"data.context {data.context} is longer than the model's context "
                f"{self.context}: lower --data.context"
            )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # before the weights: the same number of characters would load, and read the text wrong
        trained_on = checkpoint.get("hyper_parameters", {}).get("vocabulary")
        if trained_on is not None and trained_on != self.vocabulary.characters:
            raise TextError(
                f"the checkpoint was trained on a text of other characters ({trained_on!r}) "
                f"than this one ({self.vocabulary.characters!r}): give the text it was trained on"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # what `python -m lab2 generate` rebuilds the network from, without the config
        checkpoint["network"] = {
            "class_path": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "init_args": self.model.config(),
        }

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        inputs, targets = batch
        logits = self.model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {loss.item()} at step {self.global_step}: lower the learning "
                "rate or clip gradients (trainer.gradient_clip_val); checkpoints saved so far "
                "are kept"
            )
        self.mean_loss[f"{stage}_loss"].update(loss.detach(), weight=targets.numel())
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        if batch_idx % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        loss = self.mean_loss[f"{stage}_loss"].compute()
        self.mean_loss[f"{stage}_loss"].reset()
        metrics = {f"{stage}/loss": loss}
        if stage != "train":
            metrics |= {f"{stage}/bpc": loss / math.log(2), f"{stage}/ppl": loss.exp()}
        self.log_dict(metrics, prog_bar=stage != "train", sync_dist=False)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if self.hparams.sample_length and not self.trainer.sanity_checking:
            self._write_sample()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _write_sample(self) -> None:
        log_dir = self.trainer.log_dir  # on every process: a collective call under DDP
        if self.trainer.global_rank != 0:
            return
        hparams = self.hparams
        (text,) = sample_texts(
            self.model,
            self.vocabulary,
            hparams.sample_prompt,
            hparams.sample_length,
            hparams.sample_seed,
            device=self.device,
            temperature=hparams.sample_temperature,
            top_k=hparams.sample_top_k,
        )
        if log_dir:
            path = Path(log_dir, "samples", f"step_{self.global_step:06d}.txt")
            write_text_atomic(path, text + "\n")
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_text(
                    "samples", columns=["step", "text"], data=[[self.global_step, text]]
                )

    def configure_optimizers(self):
        hparams = self.hparams
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for p in parameters if p.ndim >= 2],
                "weight_decay": hparams.weight_decay,
            },
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=hparams.lr, betas=hparams.betas)
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise ValueError("the learning-rate schedule needs trainer.max_epochs or max_steps")
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(hparams.warmup_steps, int(total_steps), hparams.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float) -> Callable[[int], float]:
    """The lr factor at a step: ``step / warmup`` during warm-up, then a half cosine from 1 down
    to ``min_ratio`` at ``total_steps`` (nanoGPT's ``get_lr``)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
