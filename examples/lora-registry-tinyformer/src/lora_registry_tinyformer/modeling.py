"""Tinyformer: a small decoder that transformers does not ship, with names no other tool guesses.

Each block mixes tokens with ``mix`` (separate ``Wq``/``Wk``/``Wv`` and an output ``Wout``) and
channels with ``channel`` (a gated FFN: ``expand``, ``gate``, ``contract``).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig


class TinyformerConfig(PretrainedConfig):
    """Sizes of a Tinyformer."""

    model_type = "tinyformer"

    def __init__(
        self,
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=8,
        num_attention_heads=8,
        tie_word_embeddings=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


class TinyMixer(nn.Module):
    """Token mixing: causal multi-head attention under other names."""

    def __init__(self, config: TinyformerConfig):
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.Wq = nn.Linear(d, d, bias=False)
        self.Wk = nn.Linear(d, d, bias=False)
        self.Wv = nn.Linear(d, d, bias=False)
        self.Wout = nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (w(x).view(b, t, self.heads, -1).transpose(1, 2) for w in (self.Wq, self.Wk, self.Wv))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.Wout(y.transpose(1, 2).reshape(b, t, d))


class TinyChannelMix(nn.Module):
    """Channel mixing: a SwiGLU FFN."""

    def __init__(self, config: TinyformerConfig):
        super().__init__()
        self.expand = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.gate = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.contract = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.contract(nn.functional.silu(self.gate(x)) * self.expand(x))


class TinyBlock(nn.Module):
    """Pre-norm residual block."""

    def __init__(self, config: TinyformerConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(config.hidden_size)
        self.mix = TinyMixer(config)
        self.norm2 = nn.RMSNorm(config.hidden_size)
        self.channel = TinyChannelMix(config)

    def forward(self, x):
        x = x + self.mix(self.norm1(x))
        return x + self.channel(self.norm2(x))


class TinyformerForCausalLM(nn.Module):
    """Token embedding, blocks, and an unembedding onto the vocabulary."""

    def __init__(self, config: TinyformerConfig):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(TinyBlock(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size)
        self.unembed = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.norm(x))
