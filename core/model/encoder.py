"""BERT/RoBERTa-style encoder from scratch (no nn.TransformerEncoder / nn.MultiheadAttention).

The core owns the Q/K/V/output projections and the head split; the attention plugin only maps
``q, k, v [B, H, N, Dh] -> [B, H, N, Dh]``, so changing ``model.attention.type`` never touches
this file.

A batch with padding runs unpadded (:mod:`effx.model.unpad`): embeddings, norms, projections and
the MLP work on the ``T`` real tokens ``[T, D]``; only attention sees the per-sequence layout
``[B, H, n, Dh]`` with its key padding mask. A batch without padding runs as ``[B, N, D]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..components import Attention, PositionalEncoding, PositionMode, RelativeBias
from ..errors import CapabilityError, SequenceTooLongError
from ..masks import as_bool, attn_mask_4d
from .dropout import Dropout
from .unpad import Packing


class MultiHeadAttention(nn.Module):
    """Projections + head split around a pluggable :class:`effx.Attention`."""

    def __init__(self, d_model: int, n_heads: int, attention: Attention) -> None:
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.attention = attention

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        rel_bias: RelativeBias | None = None,
        rotary: PositionalEncoding | None = None,
        packing: Packing | None = None,
    ) -> torch.Tensor:
        """``x [B, N, D]``, or ``[T, D]`` real tokens with ``packing`` (which then holds the padding mask)."""
        if packing is not None:
            key_padding_mask = packing.mask  # (B, n)
        self._check_masks(key_padding_mask, attn_mask)
        qkv = self.qkv(x)  # (B, N, 3D) | (T, 3D)
        if packing is not None:
            qkv = packing.unpack(qkv)  # (B, n, 3D), zeros at padding
        b, n, _ = qkv.shape
        qkv = qkv.view(b, n, 3, self.n_heads, self.head_dim)  # (B, N, 3, H, Dh)
        # unbind the 3 axis in place and swap N/H per tensor (views): backward then stacks the three
        # gradients straight into the (B, N, 3, H, Dh) layout of the projection (one copy, not two)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # 3 x (B, H, N, Dh)
        if rotary is not None:
            q, k = rotary.rotate(q), rotary.rotate(k)
        o = self.attention(q, k, v, key_padding_mask=key_padding_mask, attn_mask=attn_mask, rel_bias=rel_bias)
        o = o.transpose(1, 2).reshape(b, n, self.n_heads * self.head_dim)  # (B, N, D)
        if packing is not None:
            o = packing.pack(o)  # (T, D)
        return self.out(o)

    def _check_masks(self, key_padding_mask, attn_mask) -> None:
        caps, name = self.attention.capabilities, self.attention.name
        if attn_mask is not None and not caps.attn_mask:
            raise CapabilityError(f"attention '{name}' does not support a dense attn_mask; use an attention that "
                                  f"does (`effx plugins --kind attention` lists their capabilities) or drop the mask")
        if key_padding_mask is not None and not caps.key_padding_mask:
            raise CapabilityError(f"attention '{name}' does not support padding masks; use equal-length batches "
                                  f"(data.max_length with static padding) or another attention")


class Block(nn.Module):
    """Attention + MLP with residuals, LayerNorm (pre-LN default, post-LN option) and dropout.

    ``dropout`` acts on each sub-layer's output before the residual add (BERT's hidden dropout);
    ``activation_dropout`` on the ``d_ff``-wide MLP activation, which BERT and RoBERTa leave
    undropped (fairseq's ``activation_dropout`` = 0) - hence its default 0, which also skips the
    largest mask of the step (4x the hidden size).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, attention: Attention, *, dropout: float = 0.1,
                 activation: str = "gelu", norm: str = "pre", eps: float = 1e-5,
                 activation_dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, attention)
        self.ln1, self.ln2 = nn.LayerNorm(d_model, eps=eps), nn.LayerNorm(d_model, eps=eps)
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.act = F.gelu if activation == "gelu" else F.relu
        self.drop, self.act_drop = Dropout(dropout), Dropout(activation_dropout)
        self.pre_norm = norm == "pre"

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_drop(self.act(self.fc1(x))))  # (..., D) -> (..., d_ff) -> (..., D)

    def forward(self, x, key_padding_mask=None, attn_mask=None, rel_bias=None, rotary=None,
                packing: Packing | None = None) -> torch.Tensor:
        """``x [B, N, D]``, or ``[T, D]`` with ``packing``; same shape out."""
        def attn(h):
            return self.attn(h, key_padding_mask, attn_mask, rel_bias, rotary, packing)

        if self.pre_norm:
            x = x + self.drop(attn(self.ln1(x)))
            return x + self.drop(self.mlp(self.ln2(x)))
        x = self.ln1(x + self.drop(attn(x)))
        return self.ln2(x + self.drop(self.mlp(x)))


class Encoder(nn.Module):
    """Token embedding -> positional plugin -> N blocks -> (final LayerNorm for pre-LN)."""

    def __init__(self, cfg, attentions: list[Attention], positional: PositionalEncoding) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_seq_len = cfg.max_seq_len
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positional = positional
        self.emb_ln = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.d_ff, att, dropout=cfg.dropout, activation=cfg.activation,
                  norm=cfg.norm, eps=cfg.layer_norm_eps, activation_dropout=cfg.activation_dropout)
            for att in attentions
        )
        self.final_ln = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cfg.norm == "pre" else nn.Identity()
        self.gradient_checkpointing = cfg.gradient_checkpointing
        self.unpad = True  # False: compute on padding too (the padded reference, for tests and benches)

    def check_length(self, n: int) -> None:
        if n > self.max_seq_len:
            raise SequenceTooLongError(
                f"input length {n} exceeds model.max_seq_len={self.max_seq_len}; truncate the input "
                f"(data.max_length) or raise model.max_seq_len in the config"
            )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids [B, N]``, ``attention_mask [B, N]`` (True/1 = token) -> hidden ``[B, N, D]``.

        Hidden states at padded positions are zero (nothing is computed there).
        """
        b, n = input_ids.shape
        self.check_length(n)
        kpm = as_bool(attention_mask, "attention_mask")
        attn_mask = as_bool(attn_mask, "attn_mask")
        if kpm is not None and bool(kpm.all()):
            kpm = None  # no padding in this batch: let kernels take their unmasked fast path
        if kpm is None or not self.unpad:  # the padded [B, N, D] path
            return self.run(self.tok(input_ids), n, attn_mask, kpm=kpm)  # (B, N, D)
        packing = Packing(kpm)
        if attn_mask is not None:
            attn_mask_4d(attn_mask, b, self.cfg.n_heads, n)  # validate the full shape before trimming
            attn_mask = attn_mask[..., : packing.n, : packing.n]  # dropped columns are padding everywhere
        ids = input_ids[:, : packing.n].reshape(-1).index_select(0, packing.index)  # (T,)
        hidden = self.run(self.tok(ids), packing.n, attn_mask, packing=packing)  # (T, D)
        return packing.unpack_full(hidden)  # (B, N, D)

    def run(self, x: torch.Tensor, n: int, attn_mask: torch.Tensor | None, kpm: torch.Tensor | None = None,
            packing: Packing | None = None) -> torch.Tensor:
        """Token embeddings ``x [B, N, D]`` (padding mask ``kpm``) or ``[T, D]`` (``packing``) -> hidden, same shape."""
        mode = self.positional.mode
        if mode is PositionMode.ADDITIVE:
            pos = self.positional.embed(n, x.device).to(x.dtype)  # (N, D)
            x = x + (pos if packing is None else pos.index_select(0, packing.positions))  # (.., D) | (T, D)
        rel = self.positional.relative_bias(n) if mode is PositionMode.RELATIVE_BIAS else None
        rot = self.positional if mode is PositionMode.ROTARY else None
        x = self.drop(self.emb_ln(x))
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, kpm, attn_mask, rel, rot, packing, use_reentrant=False)
            else:
                x = block(x, kpm, attn_mask, rel, rot, packing)
        return self.final_ln(x)
