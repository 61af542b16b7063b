"""The story writer: a caption in a prompt template, continued by any HuggingFace causal LM.

Generation is batched with left padding. With ``do_sample`` each story is drawn with its own
seeded stream and the repetition penalty skips each row's padding (:mod:`lab3.story.sampling`), so a
story depends on its caption, the settings and its seed only — not on the batch it is in (up to
floating-point differences between padded and unpadded matrix products, which can flip a
near-tie). ``do_sample=False`` is greedy decoding.

    writer = StoryWriter("roneneldan/TinyStories-33M")
    writer(["a bear in the woods"], length="short", seeds=[0])   # ["This is a story about …"]
"""

from __future__ import annotations

import re

import torch
from jsonargparse.typing import PositiveInt, restricted_string_type
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

from lab3.story.hub import load_pretrained
from lab3.story.sampling import PaddedRepetitionPenalty, sampling_processors

#: a length preset's name; it starts with a letter, so that "0" is no name (nor a token count)
PresetName = restricted_string_type("PresetName", r"^[A-Za-z_][\w-]*$")

#: a sentence ends with . ! or ?, maybe closing quotes or brackets, then a space or the end
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def trim_to_sentence(text: str) -> str:
    """``text`` up to its last complete sentence (all of it, stripped, when it has none)."""
    ends = [match.end() for match in SENTENCE_END.finditer(text)]
    return (text[: ends[-1]] if ends else text).strip()


class StoryWriter(nn.Module):
    """Continues ``prompt.format(caption=...)`` for ``lengths[length]`` new tokens at most.

    Args:
        model: hub name or folder of a causal LM (``AutoModelForCausalLM``).
        tokenizer: hub name or folder of its tokenizer; ``None``: the model's.
        prompt: template with a ``{caption}`` field.
        lengths: preset name → ``max_new_tokens``; a call may also pass a number.
        temperature, top_p: sampling warpers (transformers' own), used when ``do_sample``.
        repetition_penalty: CTRL's penalty (Keskar et al. 2019) on tokens already in the text.
        do_sample: sample (seeded per story) or decode greedily.

    Raises :class:`~lab3.story.hub.ModelNotAvailableError` (one line, within seconds) when
    ``model`` or ``tokenizer`` is neither a folder nor cached and the hub cannot be reached.
    """

    def __init__(
        self,
        model: str = "roneneldan/TinyStories-33M",
        tokenizer: str | None = None,
        prompt: str = "This is a story about {caption}. One day,",
        lengths: dict[PresetName, PositiveInt] | None = None,
        temperature: float = 0.7,
        top_p: float = 0.9,
        repetition_penalty: float = 1.2,
        do_sample: bool = True,
    ) -> None:
        super().__init__()
        if "{caption}" not in prompt:
            raise ValueError(f"prompt {prompt!r} has no {{caption}} field")
        if temperature <= 0 or not 0 < top_p <= 1 or repetition_penalty <= 0:
            raise ValueError("need temperature > 0, 0 < top_p <= 1 and repetition_penalty > 0")
        self.prompt = prompt
        self.lengths = lengths or {"short": 100, "medium": 150, "long": 200}
        self.temperature, self.top_p = temperature, top_p
        self.repetition_penalty, self.do_sample = repetition_penalty, do_sample
        self.tokenizer = load_pretrained(
            AutoTokenizer.from_pretrained,
            tokenizer or model,
            "writer.tokenizer" if tokenizer else "writer.model",
            padding_side="left",
        )
        if self.tokenizer.pad_token is None:  # GPT-2-style tokenizers have none
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = load_pretrained(AutoModelForCausalLM.from_pretrained, model, "writer.model")
        self.model.eval()

    def max_new_tokens(self, length: str | int) -> int:
        """A preset name or a positive number of tokens → ``max_new_tokens``."""
        if isinstance(length, int) and not isinstance(length, bool) and length > 0:
            return length
        if length in self.lengths:
            return self.lengths[length]
        raise ValueError(
            f"unknown length {length!r}: use one of {', '.join(self.lengths)} or a token count"
        )

    @torch.inference_mode()
    def forward(self, captions: list[str], length: str | int, seeds: list[int]) -> list[str]:
        """One story per caption; ``seeds[i]`` draws story ``i`` (ignored when greedy)."""
        if len(seeds) != len(captions):
            raise ValueError(f"{len(seeds)} seeds for {len(captions)} captions")
        prompts = [self.prompt.format(caption=caption) for caption in captions]
        device = next(self.model.parameters()).device
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        padding = (inputs["attention_mask"] == 0).sum(dim=1)
        processors = LogitsProcessorList(
            [PaddedRepetitionPenalty(self.repetition_penalty, padding)]
        )
        if self.do_sample:
            processors += sampling_processors(self.temperature, self.top_p, seeds)
        output = self.model.generate(
            **inputs,
            do_sample=False,  # sampling is the argmax over noisy scores, see lab3.story.sampling
            max_new_tokens=self.max_new_tokens(length),
            logits_processor=processors,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new_text = self.tokenizer.batch_decode(
            output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        return [trim_to_sentence(p + text) for p, text in zip(prompts, new_text, strict=True)]
