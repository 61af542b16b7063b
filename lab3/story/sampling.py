"""Logits processors that make a sequence's generation independent of the rest of its batch.

``generate(do_sample=True)`` draws every row of a batch from one global random stream: the same
caption with the same seed gives another story when its batch neighbours change. Here each row has
its own ``torch.Generator``: :class:`SeededGumbelNoise` adds Gumbel noise drawn from it to the
(temperature-scaled, top-p-filtered) log-probabilities and greedy decoding takes the argmax. By
the Gumbel-max trick, ``argmax(log p + G)`` with ``G ~ Gumbel(0, 1)`` is a sample of ``p`` —
the same distribution as ``torch.multinomial``, with a stream per row (Gumbel 1954; Maddison et
al. 2014, "A* Sampling", https://arxiv.org/abs/1411.0030).

    processors = sampling_processors(temperature=0.7, top_p=0.9, seeds=[0, 0, 1])
    model.generate(**inputs, do_sample=False, logits_processor=processors)

:class:`PaddedRepetitionPenalty` is the other half: ``generate``'s penalty also counts a row's
left padding as "already used" tokens, so a padded row could not end (padding is end-of-text)
where it ends alone.
"""

from __future__ import annotations

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)


class PaddedRepetitionPenalty(LogitsProcessor):
    """CTRL's repetition penalty (Keskar et al. 2019, https://arxiv.org/abs/1909.05858) over the
    tokens after each row's left padding: a seen token's score ``s`` becomes ``s / penalty`` if
    ``s > 0``, else ``s * penalty``. ``padding``: [batch] count of leading pad positions."""

    def __init__(self, penalty: float, padding: torch.Tensor) -> None:
        self.penalty, self.padding = penalty, padding

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        real = (positions[None, :] >= self.padding.to(input_ids.device)[:, None]).int()
        seen = torch.zeros(scores.shape, dtype=torch.int, device=scores.device)
        seen.scatter_add_(1, input_ids, real)  # add, not assign: a token may be pad and real
        penalized = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
        return torch.where(seen > 0, penalized, scores)


class SeededGumbelNoise(LogitsProcessor):
    """Adds ``-log(-log U)`` noise, ``U ~ Uniform(0, 1)`` from row ``i``'s own generator.

    The noise is drawn on the scores' device (on the CPU it slowed a GPU's generation fivefold),
    so a seed gives the same draws on every run on one kind of device, not across CPU and CUDA.
    """

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = seeds
        self.generators: list[torch.Generator] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if len(self.seeds) != scores.shape[0]:
            raise ValueError(f"{len(self.seeds)} seeds for a batch of {scores.shape[0]}")
        device = scores.device
        if not self.generators:
            self.generators = [torch.Generator(device).manual_seed(seed) for seed in self.seeds]
        uniform = torch.stack(
            [torch.rand(scores.shape[1], generator=g, device=device) for g in self.generators]
        ).clamp_(min=torch.finfo(torch.float32).tiny)
        return scores.float() - torch.log(-torch.log(uniform))


def sampling_processors(temperature: float, top_p: float, seeds: list[int]) -> LogitsProcessorList:
    """transformers' own temperature and top-p warpers, then per-row seeded Gumbel noise."""
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(SeededGumbelNoise(seeds))
    return processors
