"""Built-in heads: sequence classification (cls / mean / max pooling) and the MLM head."""
from __future__ import annotations

from typing import Literal

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ..bounds import at_least, between
from ..components import Head
from ..hookspecs import hookimpl


@attrs.frozen
class ClassificationConfig:
    num_classes: int = attrs.field(default=2, validator=at_least(2))
    pooling: Literal["cls", "mean", "max"] = "cls"
    dropout: float = attrs.field(default=0.1, validator=between(0, 1, high_open=True))


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """``hidden [B, N, D]``, ``mask [B, N]`` bool -> ``[B, D]``; mean/max ignore padding."""
    if how == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1)  # (B, N, 1)
    if how == "mean":
        total = (hidden * m).sum(1)  # (B, D)
        return total / m.sum(1).clamp(min=1).to(hidden.dtype)
    neg = torch.finfo(hidden.dtype).min
    out = hidden.masked_fill(~m, neg).amax(1)  # (B, D)
    return torch.where(m.any(1), out, torch.zeros_like(out))


class ClassificationHead(Head):
    """Pool tokens, dropout, linear to ``num_classes`` (logits; softmax in loss / predict)."""

    name = "classification"
    Config = ClassificationConfig
    task = "classification"

    def __init__(self, config: ClassificationConfig, ctx) -> None:
        super().__init__(config, ctx)
        self.drop = nn.Dropout(config.dropout)
        self.proj = nn.Linear(ctx.d_model, config.num_classes)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.drop(pool(hidden, attention_mask, self.config.pooling)))  # (B, C)


@attrs.frozen
class MLMHeadConfig:
    activation: Literal["gelu", "relu"] = "gelu"
    tie_weights: bool = True


class MLMHead(Head):
    """Dense + activation + LayerNorm + decoder tied to the token embedding (BERT).

    Every position is decoded on its own, so ``forward`` takes hidden states of any leading shape:
    ``[B, N, D]`` or, during training, only the masked positions ``[M, D]`` (the vocabulary
    projection is most of an MLM step's arithmetic, and unmasked positions carry no loss).
    """

    name = "mlm"
    Config = MLMHeadConfig
    task = "mlm"

    def __init__(self, config: MLMHeadConfig, ctx) -> None:
        super().__init__(config, ctx)
        self.dense = nn.Linear(ctx.d_model, ctx.d_model)
        self.ln = nn.LayerNorm(ctx.d_model, eps=ctx.layer_norm_eps)
        self.decoder = nn.Linear(ctx.d_model, ctx.vocab_size)

    def tie_weights(self, embedding: nn.Embedding) -> None:
        if self.config.tie_weights:
            self.decoder.weight = embedding.weight

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        act = F.gelu if self.config.activation == "gelu" else F.relu
        return self.decoder(self.ln(act(self.dense(hidden))))  # (..., D) -> (..., V)


@hookimpl
def effx_head_types():
    return [ClassificationHead, MLMHead]
