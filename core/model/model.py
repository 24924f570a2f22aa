"""Encoder + head."""
from __future__ import annotations

import torch
from torch import nn

from ..components import Head


class EffxModel(nn.Module):
    """``forward(input_ids [B, N], attention_mask [B, N]) -> logits`` of the head."""

    def __init__(self, encoder: nn.Module, head: Head) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        head.tie_weights(encoder.tok)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask, attn_mask)  # (B, N, D)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        return self.head(hidden, attention_mask.bool())

    def num_parameters(self, trainable_only: bool = True) -> int:
        seen, total = set(), 0
        for p in self.parameters():
            if id(p) in seen or (trainable_only and not p.requires_grad):
                continue
            seen.add(id(p))
            total += p.numel()
        return total
