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
                attn_mask: torch.Tensor | None = None, select: torch.Tensor | None = None) -> torch.Tensor:
        """``select [B, N]`` bool (token-level heads only, e.g. MLM): run the head on the selected
        positions alone and return their logits ``[M, V]`` in row-major order (M = select.sum())."""
        hidden = self.encoder(input_ids, attention_mask, attn_mask)  # (B, N, D)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        if select is None:
            return self.head(hidden, attention_mask.bool())
        if self.head.task != "mlm":
            raise ValueError(f"select= needs a token-level head; '{self.head.name}' pools the sequence")
        return self.head(hidden[select], attention_mask.bool()[select])  # (M, D) -> (M, V)

    def num_parameters(self, trainable_only: bool = True) -> int:
        seen, total = set(), 0
        for p in self.parameters():
            if id(p) in seen or (trainable_only and not p.requires_grad):
                continue
            seen.add(id(p))
            total += p.numel()
        return total
