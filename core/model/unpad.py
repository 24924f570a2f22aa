"""Unpadding: run the token-wise layers of the encoder on the real tokens of a batch only.

A padded batch ``[B, N]`` with ``T`` real tokens is *packed* into ``[T, D]`` rows for the
embeddings, norms, projections and MLP; attention still sees the per-sequence layout
``[B, H, n, Dh]`` with a key padding mask, so every attention plugin gets exactly the inputs
it always got. ``n`` is the last column that holds a real token in any row (trailing all-padding
columns are dropped, which changes nothing for exact attention) and a token keeps its column as
its position, so positional encodings see the same positions as in the padded computation.

Packing and unpacking are an index copy each way (their backward is the other copy), a memory
pass over ``B x n`` rows per attention layer instead of the full compute of a layer on padding.
"""
from __future__ import annotations

import torch


def scatter_rows(x: torch.Tensor, index: torch.Tensor, holes: torch.Tensor | None, rows: int) -> torch.Tensor:
    """``[T, F] -> [R, F]``: row ``index[t]`` = ``x[t]``; the rows in ``holes`` (all others) are zero.

    With ``holes`` given only those rows are zeroed, not the whole buffer (padding is usually a few rows).
    """
    if holes is None:
        return x.new_zeros(rows, x.shape[1]).index_copy_(0, index, x)  # (R, F)
    out = x.new_empty(rows, x.shape[1]).index_copy_(0, index, x)  # (R, F)
    return out.index_fill_(0, holes, 0.0)


class _Unpack(torch.autograd.Function):
    """``[T, F] -> [R, F]`` with the rows at ``index`` filled and zeros elsewhere; backward gathers."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, holes: torch.Tensor | None, rows: int) -> torch.Tensor:
        ctx.save_for_backward(index)
        return scatter_rows(x, index, holes, rows)  # (R, F)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, = ctx.saved_tensors
        return grad.index_select(0, index), None, None, None  # (T, F)


class _Pack(torch.autograd.Function):
    """``[R, F] -> [T, F]``: the rows at ``index``; backward scatters."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index, holes)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)  # (T, F)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, holes = ctx.saved_tensors
        return scatter_rows(grad, index, holes, ctx.rows), None, None  # (R, F)


class Packing:
    """Where the real tokens of a padded batch are, and the copies between the two layouts.

    ``mask [B, N]`` bool (True = real token). Attributes: ``batch`` (B), ``width`` (N), ``n``
    (attention length: last real column + 1), ``mask [B, n]`` (the key padding mask of attention),
    ``index [T]`` (flat row of each real token in the ``B x n`` layout), ``positions [T]`` (its column).
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.batch, self.width = mask.shape
        cols = mask.any(0).nonzero()  # (C, 1): columns with a real token in some row
        self.n = int(cols.max()) + 1 if cols.numel() else 1
        self.mask = mask[:, : self.n]  # (B, n)
        self.index = self.mask.reshape(-1).nonzero().squeeze(1)  # (T,)
        self.holes = (~self.mask).reshape(-1).nonzero().squeeze(1)  # (B x n - T,): padding rows
        self.positions = self.index % self.n  # (T,)
        self._full_index = None

    @property
    def tokens(self) -> int:
        return self.index.numel()

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n, F]`` -> ``[T, F]`` (real tokens only)."""
        return _Pack.apply(x.reshape(self.batch * self.n, x.shape[-1]), self.index, self.holes)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, F]`` -> ``[B, n, F]``, zeros at padding."""
        return _Unpack.apply(x, self.index, self.holes, self.batch * self.n).view(self.batch, self.n, x.shape[-1])

    def unpack_full(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, F]`` -> ``[B, N, F]`` in the input's own width, zeros at padding."""
        if self._full_index is None:
            self._full_index = self.index // self.n * self.width + self.positions  # (T,)
        rows = self.batch * self.width
        return _Unpack.apply(x, self._full_index, None, rows).view(self.batch, self.width, x.shape[-1])
