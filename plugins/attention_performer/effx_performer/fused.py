"""The FAVOR+ linear-attention core as one autograd Function with a hand-written backward.

Same math as composing :func:`effx_performer.features.positive_features` with
``phi(Q) (phi(K)^T [V, 1])`` and :func:`effx_performer.favor.ratio` under autograd (the tests check
values and gradients against that), organised around memory traffic:

* each feature map is ONE matmul written into a reusable work buffer, then in-place
  ``- max + row`` and ``exp`` (no separate logits tensor); the feature ``eps`` is never added to
  the buffer: ``(F + eps) S = F S + eps 1 colsum(S)`` costs O((N + M) Dh);
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

from .features import DEN_FLOOR, KEY_DIMS, QUERY_DIMS, row_term

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


def _features(slot: int, xa: torch.Tensor, wa: torch.Tensor, row: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``exp(xa @ wa^T - max + row)`` in work buffer ``slot`` -> ``[B, H, N, M]`` (max over the
    matmul logits only; ``row [B, H, N]``)."""
    out = _buffer(slot, (*xa.shape[:-1], wa.shape[-2]), xa)  # (B, H, N, M)
    _bmm_into(out, xa, wa.transpose(-2, -1))
    return out.sub_(out.amax(dim=dims, keepdim=True) - row[..., None]).exp_()


def _plus_eps(prod: torch.Tensor, rhs: torch.Tensor, eps: float) -> torch.Tensor:
    """``prod = F @ rhs`` -> ``(F + eps) @ rhs``, in place: adds ``eps`` times the column sums of ``rhs``."""
    return prod.add_(rhs.sum(-2, keepdim=True), alpha=eps) if eps else prod


class FavorLinear(torch.autograd.Function):
    """``(xq, wq, yk, wk, v_ext, eps, sq_scale, d) -> ratio((phi(Q) + eps) ((phi(K) + eps)^T v_ext))``;
    ``xq, yk [B, H, N, a]`` whose first ``d`` columns are the raw inputs ``q, k``, ``wq, wk [M, a] |
    [B, H, M, a]`` (no gradient), ``v_ext [B, H, N, Dh+1]`` (last column ones) -> ``[B, H, N, Dh]``,
    with ``phi = exp(logits - max + row)`` and ``row = -sq_scale |x[:d]|^2 / 2``
    (:func:`effx_performer.features.positive_features`). The normalisation follows
    :func:`effx_performer.favor.ratio`.

    Row-term gradients in O(N Dh): ``sum_m phi_nm dL/dphi_nm`` is ``grad_ext_n . (phi_n kv)`` for
    queries, which is ``-eps grad_ext_n . colsum(kv)`` (the rest cancels in the ratio; 0 for eps = 0),
    and ``v_ext_n . (phi(k_n) g_kv)`` for keys; ``d row / d x = -sq_scale x``."""

    @staticmethod
    def forward(ctx, xq, wq, yk, wk, v_ext, eps, sq_scale, d):
        rq, rk = row_term(xq[..., :d], sq_scale), row_term(yk[..., :d], sq_scale)  # (B, H, N)
        kp = _features(KEY_SLOT, yk, wk, rk, KEY_DIMS)  # (B, H, N, M) work buffer
        kv = _plus_eps((v_ext.transpose(-2, -1) @ kp).transpose(-2, -1), v_ext, eps)  # (B, H, M, Dh+1)
        qp = _features(QUERY_SLOT, xq, wq, rq, QUERY_DIMS)  # (B, H, N, M) work buffer
        out_ext = _plus_eps(qp @ kv, kv, eps)  # (B, H, N, Dh+1): numerator | normaliser
        den = out_ext[..., -1:]  # (B, H, N, 1)
        inv = torch.where(den > DEN_FLOOR, den, torch.inf).reciprocal_()  # 0 where no key is seen
        out = out_ext[..., :-1].mul_(inv)  # (B, H, N, Dh), in place, a view of out_ext
        ctx.save_for_backward(xq, wq, rq, yk, wk, rk, v_ext, kv, out, inv)  # all O(N Dh) or smaller
        ctx.eps, ctx.sq_scale, ctx.d = eps, sq_scale, d
        return out

    @staticmethod
    def backward(ctx, grad):  # grad (B, H, N, Dh)
        xq, wq, rq, yk, wk, rk, v_ext, kv, out, inv = ctx.saved_tensors
        eps, sq_scale, d = ctx.eps, ctx.sq_scale, ctx.d
        g_den = (grad * out).sum(-1, keepdim=True).neg_()  # (B, H, N, 1): d out / d normaliser * den
        grad = torch.cat([grad, g_den], dim=-1).mul_(inv)  # (B, H, N, Dh+1): d loss / d out_ext
        qp = _features(QUERY_SLOT, xq, wq, rq, QUERY_DIMS)  # recomputed, (B, H, N, M)
        g_kv = _plus_eps(qp.transpose(-2, -1) @ grad, grad, eps)  # (B, H, M, Dh+1)
        g_feat = _bmm_into(_buffer(GRAD_SLOT, qp.shape, qp), grad, kv.transpose(-2, -1))  # d out / d phi(q)
        g_xq = g_feat.mul_(qp) @ wq  # (B, H, N, a): through exp, in place
        if eps:  # row term of the queries
            g_rq = (grad @ kv.sum(-2)[..., None]).mul_(eps * sq_scale)  # (B, H, N, 1) = -g_row * -sq_scale
            g_xq[..., :d].addcmul_(xq[..., :d], g_rq)
        kp = _features(KEY_SLOT, yk, wk, rk, KEY_DIMS)  # recomputed, (B, H, N, M)
        g_v = kp @ g_kv  # (B, H, N, Dh+1) through phi(K) only
        g_rk = torch.einsum("...ne,...ne->...n", v_ext, g_v)[..., None]  # (B, H, N, 1) key row-term gradient
        g_v = _plus_eps(g_v, g_kv, eps)
        _bmm_into(g_feat, v_ext, g_kv.transpose(-2, -1))  # d out / d phi(k), same buffer
        g_yk = g_feat.mul_(kp) @ wk  # (B, H, N, a)
        g_yk[..., :d].addcmul_(yk[..., :d], g_rk, value=-sq_scale)
        return g_xq, None, g_yk, None, g_v, None, None, None
