"""The FAVOR+ linear-attention core as one autograd Function with a hand-written backward.

Same math as composing :func:`effx_performer.features.positive_features` with
``phi(Q) (phi(K)^T [V, 1])`` and :func:`effx_performer.favor.ratio` under autograd (the tests check
values and gradients against that), organised around memory traffic:

* each feature map is ONE matmul written into a reusable work buffer, then in-place
  max-subtract and ``exp`` (no separate logits tensor);
* nothing of size O(N M) is saved for backward: only the matmul inputs (O(N Dh)) and the small
  ``phi(K)^T [V, 1]`` are kept; backward recomputes the two feature maps into the same work
  buffers (two extra matmuls) and applies ``d exp(l) = exp(l) * d phi`` in place. The stabilising
  maxima cancel in the attention ratio, so they carry no gradient.

Why work buffers: on CPU a fresh 64 MiB tensor costs more in page faults than the matmul that
fills it, and saved features would cost 2 x [B, H, N, M] per layer until backward. The three
buffers (query features, key features, feature gradient) live per thread, are never saved by
autograd and are only used inside one forward or one backward call, so layers, recomputes and
steps can share them. They grow to the largest shape seen; :func:`release_workspace` frees them.
"""
from __future__ import annotations

import math
import threading

import torch

from .features import DEN_FLOOR, KEY_DIMS, QUERY_DIMS

_local = threading.local()
QUERY_SLOT, KEY_SLOT, GRAD_SLOT = 0, 1, 2


def release_workspace() -> None:
    """Free this thread's work buffers (they are re-created on the next call)."""
    _local.buffers = {}


def _buffer(slot: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """This thread's work buffer ``slot`` viewed as ``shape`` (contents undefined)."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    key = (slot, like.device, like.dtype)
    size = math.prod(shape)
    buf = buffers.get(key)
    if buf is None or buf.numel() < size:
        buffers[key] = buf = None  # drop the old one before allocating the larger one
        buffers[key] = buf = torch.empty(size, device=like.device, dtype=like.dtype)
    return buf[:size].view(shape)


def _bmm_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out[B, H, N, M] = a[B, H, N, K] @ b[B|-, H|-, K, M]`` written into ``out`` (no allocation)."""
    bh, n, m = out.shape[0] * out.shape[1], out.shape[2], out.shape[3]
    k = a.shape[-1]
    if b.dim() == 2:  # shared right operand: one 2-D matmul over all rows
        torch.mm(a.reshape(bh * n, k), b, out=out.view(bh * n, m))
    else:
        torch.bmm(a.reshape(bh, n, k), b.expand(*out.shape[:2], k, m).reshape(bh, k, m), out=out.view(bh, n, m))
    return out


def _features(slot: int, xa: torch.Tensor, wa: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``exp(xa @ wa^T - max)`` in work buffer ``slot`` -> ``[B, H, N, M]``."""
    out = _buffer(slot, (*xa.shape[:-1], wa.shape[-2]), xa)  # (B, H, N, M)
    _bmm_into(out, xa, wa.transpose(-2, -1))
    return out.sub_(out.amax(dim=dims, keepdim=True)).exp_()


class FavorLinear(torch.autograd.Function):
    """``(xq, wq, yk, wk, v_ext) -> ratio(phi(Q) (phi(K)^T v_ext))``; ``xq, yk [B, H, N, a]``,
    ``wq, wk [M, a] | [B, H, M, a]`` (no gradient), ``v_ext [B, H, N, Dh+1]`` (last column ones)
    -> ``[B, H, N, Dh]``. The normalisation follows :func:`effx_performer.favor.ratio`."""

    @staticmethod
    def forward(ctx, xq, wq, yk, wk, v_ext):
        kp = _features(KEY_SLOT, yk, wk, KEY_DIMS)  # (B, H, N, M) work buffer
        kv = (v_ext.transpose(-2, -1) @ kp).transpose(-2, -1)  # (B, H, M, Dh+1)
        qp = _features(QUERY_SLOT, xq, wq, QUERY_DIMS)  # (B, H, N, M) work buffer
        out_ext = qp @ kv  # (B, H, N, Dh+1): numerator | normaliser
        den = out_ext[..., -1:]  # (B, H, N, 1)
        inv = torch.where(den > DEN_FLOOR, den, torch.inf).reciprocal_()  # 0 where no key is seen
        out = out_ext[..., :-1].mul_(inv)  # (B, H, N, Dh), in place, a view of out_ext
        ctx.save_for_backward(xq, wq, yk, wk, v_ext, kv, out, inv)  # all O(N Dh) or smaller
        return out

    @staticmethod
    def backward(ctx, grad):  # grad (B, H, N, Dh)
        xq, wq, yk, wk, v_ext, kv, out, inv = ctx.saved_tensors
        g_den = (grad * out).sum(-1, keepdim=True).neg_()  # (B, H, N, 1): d out / d normaliser * den
        grad = torch.cat([grad, g_den], dim=-1).mul_(inv)  # (B, H, N, Dh+1): d loss / d out_ext
        qp = _features(QUERY_SLOT, xq, wq, QUERY_DIMS)  # recomputed, (B, H, N, M)
        g_kv = qp.transpose(-2, -1) @ grad  # (B, H, M, Dh+1)
        g_feat = _bmm_into(_buffer(GRAD_SLOT, qp.shape, qp), grad, kv.transpose(-2, -1))  # d out / d phi(q)
        g_xq = g_feat.mul_(qp) @ wq  # (B, H, N, a): through exp, in place
        kp = _features(KEY_SLOT, yk, wk, KEY_DIMS)  # recomputed, (B, H, N, M)
        g_v = kp @ g_kv  # (B, H, N, Dh+1)
        _bmm_into(g_feat, v_ext, g_kv.transpose(-2, -1))  # d out / d phi(k), same buffer
        g_yk = g_feat.mul_(kp) @ wk  # (B, H, N, a)
        return g_xq, None, g_yk, None, g_v
