"""Kernelised attention with a relative-position bias in O(N log N) by FFT (Luo et al., "Stable,
Fast and Accurate: Kernelized Attention with Relative Positional Encoding", NeurIPS 2021).

With a relative bias ``b(i - j)`` the kernel becomes ``phi(q_i)^T phi(k_j) * exp(b(i - j))``, so

    numerator_i = phi(q_i)^T  sum_j c(i - j) phi(k_j) [v_j, 1]^T,      c = exp(b)

The inner sum is a Toeplitz matrix-vector product along the sequence for every (feature, value)
channel: a linear convolution of ``c`` (length 2N-1) with ``x_j = phi(k_j) [v_j, 1]^T``, done by
real FFTs of length ``L >= 2N - 1`` (no wrap-around reaches the outputs we keep). ``exp(b)`` is
divided by its per-head max first, a constant that cancels in the ratio.

Memory: the ``[B, H, N, M, Dh+1]`` outer products are processed in feature chunks of at most
``CHUNK_ELEMENTS`` values, and under autograd each chunk is recomputed in backward instead of
stored, so peak memory stays O(N (M + chunk)), never N x N. Time is O(N log N M Dh): slower than
the plain linear path by the FFT factor, as in the paper.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

CHUNK_ELEMENTS = 1 << 22  # values of the (B, H, chunk, Dh+1, L) spectrum per feature chunk


def fft_length(n: int) -> int:
    """Smallest power of two ``>= 2n - 1``."""
    return 1 << max(0, (2 * n - 2).bit_length())


def _chunk(qc: torch.Tensor, kc: torch.Tensor, v_ext: torch.Tensor, c_hat: torch.Tensor, length: int) -> torch.Tensor:
    """One feature chunk: ``qc, kc [B, H, N, mc]`` -> its ``[B, H, N, E]`` contribution.

    Sequence is the LAST axis of every FFT operand (contiguous transforms, ~2x faster on CPU).
    """
    n = kc.shape[2]
    x = kc.transpose(-2, -1)[..., :, None, :] * v_ext.transpose(-2, -1)[..., None, :, :]  # (B, H, mc, E, N)
    x_hat = torch.fft.rfft(x, n=length, dim=-1)  # (B, H, mc, E, F)
    y = torch.fft.irfft(x_hat * c_hat, n=length, dim=-1)[..., n - 1:2 * n - 1]  # (B, H, mc, E, N)
    return (y * qc.transpose(-2, -1)[..., :, None, :]).sum(2).transpose(-2, -1)  # (B, H, N, E)


def toeplitz_attention(qp: torch.Tensor, kp: torch.Tensor, v_ext: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``qp, kp [B, H, N, M]``, ``v_ext [B, H, N, E]``, ``table [H, 2N-1]`` (bias of offset i-j at
    index i-j+N-1) -> ``[B, H, N, E]`` = ``sum_j phi(q_i).phi(k_j) exp(b(i-j)) v_ext_j``."""
    b, h, n, m = kp.shape
    length = fft_length(n)
    c = torch.exp(table - table.amax(dim=-1, keepdim=True))  # (H, 2N-1), max 1
    c_hat = torch.fft.rfft(c, n=length, dim=-1)[None, :, None, None, :]  # (1, H, 1, 1, F)
    chunk = max(1, CHUNK_ELEMENTS // max(1, b * h * length * v_ext.shape[-1]))
    recompute = torch.is_grad_enabled()  # keep only chunk inputs for backward: O(N M) memory, not O(N M E)
    out = None
    for s in range(0, m, chunk):  # bounded-memory loop over feature chunks (not over positions)
        args = (qp[..., s:s + chunk], kp[..., s:s + chunk], v_ext, c_hat, length)
        part = checkpoint(_chunk, *args, use_reentrant=False) if recompute else _chunk(*args)
        out = part if out is None else out + part
    return out
