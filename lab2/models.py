"""Character-level language models: the bigram table of the video, and ``CharGPT``.

``CharGPT`` is Karpathy's GPT (nanoGPT's ``model.py``) at character level: token and position
embeddings, pre-LayerNorm decoder blocks (causal self-attention through
``F.scaled_dot_product_attention``, then a 4× GELU MLP), a final LayerNorm and an output layer
tied to the token embedding. Its parameter names and shapes are GPT-2's, so
:func:`lab2.export.to_gpt2` copies a trained model into ``transformers.GPT2LMHeadModel``.

Both models map token ids ``(B, T)`` to next-token logits ``(B, T, vocab_size)``; both take a
key/value ``cache`` (a list per layer, empty for the bigram) so that :func:`lab2.sampling.generate`
feeds only the new character at each step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: per layer, the keys and values of the positions seen so far: ``(B, heads, T, head_width)`` each
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class BigramLM(nn.Module):
    """The floor: the next character's logits depend on the current character only (a
    ``vocab × vocab`` table, the first model of "Let's build GPT")."""

    def __init__(self, vocab_size: int, context: int = 256) -> None:
        super().__init__()
        self.context = context  # the window callers feed (a bigram has no limit)
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        return self.table(tokens)

    def config(self) -> dict:
        return {"vocab_size": self.table.num_embeddings, "context": self.context}


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, bias: bool) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width, bias=bias)  # queries, keys, values at once
        self.c_proj = nn.Linear(width, width, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, length, width = x.shape
        q, k, v = (
            t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for t in self.c_attn(x).split(width, dim=2)
        )
        mask, causal = None, True
        if past is not None and past[0].shape[2] > 0:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            # new position i sees every cached position and the new ones up to itself
            seen = k.shape[2] - length
            mask = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(seen)
            causal = False
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0,
        )
        y = y.transpose(1, 2).contiguous().view(batch, length, width)
        return self.resid_dropout(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, width: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * width, width, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm decoder block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, width: int, heads: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=bias)
        self.attn = CausalSelfAttention(width, heads, dropout, bias)
        self.ln_2 = nn.LayerNorm(width, bias=bias)
        self.mlp = MLP(width, dropout, bias)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, present = self.attn(self.ln_1(x), past)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), present


class CharGPT(nn.Module):
    """A GPT over characters.

    Args:
        vocab_size: distinct characters (given by the data: the CLI passes it).
        context: the most characters the model sees at once (learned positions).
        layers, heads, width: decoder blocks, attention heads per block, embedding width.
        dropout: on embeddings, attention weights and residual branches while training.
        bias: biases in linear layers and LayerNorms (GPT-2 has them; needed for the export).
    """

    def __init__(
        self,
        vocab_size: int,
        context: int = 256,
        layers: int = 6,
        heads: int = 6,
        width: int = 384,
        dropout: float = 0.2,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.context, self.layers, self.heads, self.width = context, layers, heads, width
        self.dropout_rate, self.bias = dropout, bias
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(vocab_size, width),
                "wpe": nn.Embedding(context, width),
                "drop": nn.Dropout(dropout),
                "h": nn.ModuleList(Block(width, heads, dropout, bias) for _ in range(layers)),
                "ln_f": nn.LayerNorm(width, bias=bias),
            }
        )
        self.lm_head = nn.Linear(width, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying (Press & Wolf, 2017)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections into the residual stream: 1/sqrt(2·layers)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def config(self) -> dict:
        """The arguments that rebuild this network (kept in checkpoints, used by the export)."""
        return {
            "vocab_size": self.transformer.wte.num_embeddings,
            "context": self.context,
            "layers": self.layers,
            "heads": self.heads,
            "width": self.width,
            "dropout": self.dropout_rate,
            "bias": self.bias,
        }

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` of the characters after each of ``tokens`` ``(B, T)``.

        With ``cache`` (a list, empty at first), the tokens continue the cached positions, and
        the cache is extended in place with their keys and values.
        """
        start = cache[0][0].shape[2] if cache else 0
        end = start + tokens.shape[1]
        if end > self.context:
            raise ValueError(
                f"{end} characters exceed the model's context of {self.context}: feed at most "
                f"{self.context} at once"
            )
        positions = torch.arange(start, end, device=tokens.device)
        x = self.transformer.drop(self.transformer.wte(tokens) + self.transformer.wpe(positions))
        for index, block in enumerate(self.transformer.h):
            past = cache[index] if cache is not None and len(cache) > index else None
            x, present = block(x, past)
            if cache is not None:
                cache[index : index + 1] = [present]
        return self.lm_head(self.transformer.ln_f(x))
