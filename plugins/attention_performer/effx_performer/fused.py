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

from .features import DEN_FLOOR, KEY_DIMS, QUERY_DIMS, row_term, stabiliser

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


def _features(slot: int, xa: torch.Tensor, wa: torch.Tensor, row: torch.Tensor, dims: tuple[int, ...],
              eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(xa @ wa^T + row - c)`` in work buffer ``slot`` -> ``[B, H, N, M]`` and the scaled
    ``eps e^-c`` ``[B, H, N|1, 1]`` (``c``: :func:`effx_performer.features.stabiliser`)."""
    out = _buffer(slot, (*xa.shape[:-1], wa.shape[-2]), xa)  # (B, H, N, M)
    _bmm_into(out, xa, wa.transpose(-2, -1)).add_(row[..., None])
    c = stabiliser(out, dims, eps)  # (B, H, N|1, 1)
    return out.sub_(c).exp_(), (torch.exp(-c) * eps if eps else None)


def _plus_eps(prod: torch.Tensor, rhs: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
    """``prod = F @ rhs`` -> ``(F + e) @ rhs`` in place, ``e`` broadcast over the feature axis:
    adds ``e`` times the column sums of ``rhs`` (O((N + M) E), no pass over ``F``)."""
    return prod.add_(rhs.sum(-2, keepdim=True) * e) if e is not None else prod


def _weighted_colsum(g: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor | None:
    """``sum_n e_n g_n`` -> ``[B, H, 1, E]``: the gradient reaching a constant feature ``e``."""
    return None if e is None else (g * e).sum(-2, keepdim=True)


class FavorLinear(torch.autograd.Function):
    """``(xq, wq, yk, wk, v_ext, eps, sq_scale, d) -> ratio((phi(Q) + eq) ((phi(K) + ek)^T v_ext))``;
    ``xq, yk [B, H, N, a]`` whose first ``d`` columns are the raw inputs ``q, k``, ``wq, wk [M, a] |
    [B, H, M, a]`` (gradient only when required), ``v_ext [B, H, N, Dh+1]`` (last column ones) -> ``[B, H, N, Dh]``,
    with ``phi = exp(l - c)``, ``l = x' w'^T - sq_scale |x[:d]|^2 / 2`` and ``e = eps e^-c``
    (:func:`effx_performer.features.positive_features`). The normalisation follows
    :func:`effx_performer.favor.ratio`.

    Backward differentiates the output with every stabiliser ``c`` held constant, which is exact:
    ``c`` multiplies numerator and normaliser of a query alike, so the output does not depend on
    it. Through ``exp``: ``dl = phi * dphi``; the row term adds ``-sq_scale x sum_m dl``."""

    @staticmethod
    def forward(ctx, xq, wq, yk, wk, v_ext, eps, sq_scale, d):
        rq, rk = row_term(xq[..., :d], sq_scale), row_term(yk[..., :d], sq_scale)  # (B, H, N)
        kp, ek = _features(KEY_SLOT, yk, wk, rk, KEY_DIMS, eps)  # (B, H, N, M) work buffer, (B, H, 1, 1)
        kv = _plus_eps((v_ext.transpose(-2, -1) @ kp).transpose(-2, -1), v_ext, ek)  # (B, H, M, Dh+1)
        qp, eq = _features(QUERY_SLOT, xq, wq, rq, QUERY_DIMS, eps)  # (B, H, N, M), (B, H, N, 1)
        out_ext = _plus_eps(qp @ kv, kv, eq)  # (B, H, N, Dh+1): numerator | normaliser
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
        qp, eq = _features(QUERY_SLOT, xq, wq, rq, QUERY_DIMS, eps)  # recomputed, (B, H, N, M)
        g_kv = qp.transpose(-2, -1) @ grad  # (B, H, M, Dh+1)
        if eq is not None:
            g_kv.add_(_weighted_colsum(grad, eq))
        g_lq = _bmm_into(_buffer(GRAD_SLOT, qp.shape, qp), grad, kv.transpose(-2, -1)).mul_(qp)  # d loss / d lq
        g_xq = _through_row(g_lq, wq, xq, d, sq_scale)
        g_wq = _weight_grad(g_lq, xq, wq) if ctx.needs_input_grad[1] else None
        kp, ek = _features(KEY_SLOT, yk, wk, rk, KEY_DIMS, eps)  # recomputed, (B, H, N, M)
        g_v = _plus_eps(kp @ g_kv, g_kv, ek)  # (B, H, N, Dh+1)
        g_lk = _bmm_into(g_lq, v_ext, g_kv.transpose(-2, -1)).mul_(kp)  # same buffer, d loss / d lk
        g_yk = _through_row(g_lk, wk, yk, d, sq_scale)
        g_wk = _weight_grad(g_lk, yk, wk) if ctx.needs_input_grad[3] else None
        return g_xq, g_wq, g_yk, g_wk, g_v, None, None, None


def _weight_grad(g_l: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``dL/dw`` for ``l = x w^T``: ``g_l^T x`` ``[B, H, M, a]``, summed over B, H for a shared ``w [M, a]``
    (FAVOR++'s data-dependent projection needs it; FAVOR+'s ``w`` is a buffer and skips it)."""
    g_w = g_l.transpose(-2, -1) @ x  # (B, H, M, a)
    return g_w.sum((0, 1)) if w.dim() == 2 else g_w


def _through_row(g_l: torch.Tensor, w: torch.Tensor, x: torch.Tensor, d: int, sq_scale: float) -> torch.Tensor:
    """Gradient of the operand ``x [B, H, N, a]`` from ``g_l = dL/dl [B, H, N, M]`` with
    ``l = x w^T - sq_scale |x[:d]|^2 / 2``."""
    g_x = g_l @ w  # (B, H, N, a)
    g_x[..., :d].addcmul_(x[..., :d], g_l.sum(-1, keepdim=True), value=-sq_scale)
    return g_x
