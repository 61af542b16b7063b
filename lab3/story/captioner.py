"""The captioner: any HuggingFace image-to-text model, batched (BLIP base by default)."""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveInt
from PIL import Image
from torch import nn
from transformers import AutoModelForImageTextToText, AutoProcessor

from lab3.story.hub import load_pretrained


class Captioner(nn.Module):
    """Captions a batch of RGB images with greedy decoding (deterministic).

    Args:
        model: hub name or folder, loaded with ``AutoProcessor`` and
            ``AutoModelForImageTextToText`` (transformers 5's name of ``AutoModelForVision2Seq``).
        prefix: text the caption is conditioned on (BLIP's conditional captioning, e.g.
            ``"a picture of"``); removed from the returned caption so it reads well in a prompt.
        max_new_tokens: longest caption, in tokens.

    Raises :class:`~lab3.story.hub.ModelNotAvailableError` (one line, within seconds) when
    ``model`` is neither a folder nor cached and the hub cannot be reached.

        Captioner("Salesforce/blip-image-captioning-base")([Image.open("bear.jpg")])
        # ["a brown bear sitting in the grass"]
    """

    def __init__(
        self,
        model: str = "Salesforce/blip-image-captioning-base",
        prefix: str | None = None,
        max_new_tokens: PositiveInt = 30,
    ) -> None:
        super().__init__()
        self.prefix, self.max_new_tokens = prefix, max_new_tokens
        self.processor = load_pretrained(AutoProcessor.from_pretrained, model, "captioner.model")
        self.model = load_pretrained(
            AutoModelForImageTextToText.from_pretrained, model, "captioner.model"
        ).eval()

    @torch.inference_mode()
    def forward(self, images: list[Image.Image]) -> list[str]:
        text = [self.prefix] * len(images) if self.prefix else None
        parameter = next(self.model.parameters())
        inputs = self.processor(images=images, text=text, return_tensors="pt").to(parameter.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(parameter.dtype)
        output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        captions = self.processor.batch_decode(output, skip_special_tokens=True)
        return [self._without_prefix(caption.strip()) for caption in captions]

    def _without_prefix(self, caption: str) -> str:
        if self.prefix and caption.lower().startswith(self.prefix.lower()):
            return caption[len(self.prefix) :].strip()
        return caption
