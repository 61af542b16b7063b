"""Sampling text from a character model, one new character per forward step (KV cache).

The model sees the characters since the last *restart*: while the text fits its context, that
is the whole text (the prompt's last ``context`` characters at most), exactly as full-context
generation (nanoGPT's ``generate``) sees it; when the window is full, generation restarts from
the last ``context // 2`` characters. So ``N`` new characters cost ``N`` one-character steps
plus one half-context step per ``context // 2`` characters: O(N), where recomputing the whole
window at each step costs O(N · context).

Temperature, top-k and top-p are transformers' logits warpers, the ones its ``generate`` uses.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lab2.data import Vocabulary


class SamplingError(ValueError):
    """Sampling settings that cannot work: the message says which and why."""


def warpers(temperature: float, top_k: int | None, top_p: float | None) -> LogitsProcessorList:
    """Temperature, then top-k, then top-p (transformers' order), checked first."""
    if not temperature > 0:
        raise SamplingError(
            f"temperature must be > 0, got {temperature} (for the most likely character "
            "always, use top_k 1)"
        )
    if top_k is not None and top_k < 1:
        raise SamplingError(f"top_k must be ≥ 1 (or None for all characters), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise SamplingError(f"top_p must be in (0, 1], got {top_p}")
    steps = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k is not None:
        steps.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1:
        steps.append(TopPLogitsWarper(top_p))
    return steps


@torch.inference_mode()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """``prompt`` ids ``(B, T)`` followed by ``length`` sampled ids: ``(B, T + length)``.

    ``use_cache=False`` recomputes the whole window at every step (the reference the cached
    path must equal; slower). ``generator`` seeds the draws: the same seed, the same text.
    """
    if prompt.ndim != 2 or prompt.shape[1] == 0:
        raise SamplingError("the prompt must hold at least one character")
    steps = warpers(temperature, top_k, top_p)
    context = model.context
    tokens = prompt
    start = max(0, tokens.shape[1] - context)  # the window is tokens[:, start:]
    cache: list = []
    logits = model(tokens[:, start:], cache if use_cache else None)[:, -1]
    for _ in range(length):
        probabilities = steps(tokens, logits.float()).softmax(dim=-1)
        new = torch.multinomial(probabilities, 1, generator=generator)
        tokens = torch.cat([tokens, new], dim=1)
        if tokens.shape[1] - start > context:  # full: restart from the last half-window
            start = tokens.shape[1] - max(1, context // 2)
            cache = []
            logits = model(tokens[:, start:], cache if use_cache else None)[:, -1]
        elif use_cache:
            logits = model(new, cache)[:, -1]
        else:
            logits = model(tokens[:, start:])[:, -1]
    return tokens


def sample_texts(
    network: nn.Module,
    vocabulary: Vocabulary,
    prompt: str,
    length: int,
    seed: int,
    num_samples: int = 1,
    device: torch.device | str = "cpu",
    **settings,
) -> list[str]:
    """``num_samples`` texts, each the prompt and ``length`` sampled characters; the same seed
    gives the same texts (the draws come from a generator seeded on ``device``)."""
    ids = vocabulary.encode(prompt).to(device).expand(num_samples, -1)
    generator = torch.Generator(device).manual_seed(seed)
    tokens = generate(network.to(device), ids, length, generator=generator, **settings)
    return [vocabulary.decode(row) for row in tokens.cpu()]
