"""The FAVOR+ linear-attention core as one autograd Function with a hand-written backward.

Same math as composing :func:`effx_performer.features.stabilised_features` with
``phi(Q) (phi(K)^T [V, 1])`` and :func:`effx_performer.favor.ratio` under autograd (the tests check
values and gradients against that, and float64 gradcheck against finite differences), organised
around memory traffic:

* the sequence is processed in row blocks small enough that a block's ``[B*H, rows, M]`` logits
  stay in cache: ONE matmul writes them into a reusable work buffer, one in-place pass subtracts
  the stabiliser and the ``-|x|^2/2`` row term, one applies ``exp``, and the block is consumed by
  the next matmul before it leaves the cache (a full ``[B, H, N, M]`` tensor would be streamed
  through memory several times);
* the key stabiliser ``c_K`` is one constant per head; it is found online over the key blocks: when
  a block raises the running maximum, the accumulated ``phi(K)^T [V, 1]`` is multiplied by
  ``exp(c_old - c_new)``, so the result equals stabilising with the final ``c_K`` from the start
  (the same trick as online softmax);
* the feature ``eps`` is never added to a buffer: ``(F + e) S = F S + e 1 colsum(S)`` with
  ``e = eps e^-c``, O((N + M) Dh);
* nothing of size O(N M) is saved for backward: only the matmul inputs (O(N Dh)), the small
  ``phi(K)^T [V, 1]`` and ``c_K`` are kept; backward recomputes each block's features and applies
  ``d exp(l) = exp(l) * d phi`` in place.

What the backward differentiates: the output with every stabiliser held constant. That is the
exact derivative of the forward, because a stabiliser multiplies every term of a query's numerator
and normaliser alike (:mod:`effx_performer.features`): the output does not depend on its value.

The work buffers live per thread, are never saved by autograd and are only used inside one forward
or one backward call, so layers, recomputes and steps can share them; :func:`release_workspace`
frees them.
"""
from __future__ import annotations

import math
import threading

import torch

from .features import DEN_FLOOR, row_term

_local = threading.local()
LOGIT_SLOT, GRAD_SLOT = 0, 1
BLOCK_ELEMENTS = 1 << 18  # values of one head's [rows, M] block: 1 MiB in fp32, stays in L2
NO_KEY = -1e29  # floor of the key stabiliser: a padded key (row term -1e30) always gets feature 0


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


def blocks(n: int, m: int) -> list[tuple[int, int]]:
    """Row ranges ``[s, e)`` of one head's sequence blocks (the same boundaries for every length: a
    prefix of the sequence is split the same way whatever follows it)."""
    rows = max(16, BLOCK_ELEMENTS // max(1, m))
    return [(s, min(n, s + rows)) for s in range(0, n, rows)]


def _flat(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [B, H, N, a]``, ``w [M, a] | [B, H, M, a]`` -> ``x [BH, N, a]`` (contiguous), ``w^T [BH, a, M]``."""
    b, h, n, a = x.shape
    m = w.shape[-2]
    wt = w.t().expand(b * h, a, m) if w.dim() == 2 else w.reshape(b * h, m, a).transpose(1, 2)
    return x.reshape(b * h, n, a).contiguous(), wt


def _logits(xb: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """``xb [rows, a] @ wt [a, M]`` in the logit work buffer -> ``[rows, M]``."""
    out = _buffer(LOGIT_SLOT, (xb.shape[0], wt.shape[-1]), xb)
    return torch.mm(xb, wt, out=out)


def _query_block(xb, wt, rb, eps):
    """Query features of one block: ``exp(l + r - c)`` ``[rows, M]`` (in the work buffer) and
    ``eps e^-c`` ``[rows, 1]``, ``c = max(max_m (l + r), log eps)`` per row; ``rb [rows, 1]``."""
    f = _logits(xb, wt)  # (rows, M)
    c = f.amax(-1, keepdim=True).add_(rb)  # (rows, 1)
    if eps:
        c.clamp_min_(math.log(eps))
    return f.sub_(c - rb).exp_(), (torch.exp(-c).mul_(eps) if eps else None)


def _key_block(yb, wt, rb, c):
    """Key features of one block stabilised by the head's ``c [1, 1]`` (in the work buffer)."""
    return _logits(yb, wt).sub_(c - rb).exp_()  # (rows, M)


def _input_grad(g_l, wt, xb, d, sq_scale, g_xb, g_w):
    """``g_l = dL/dl`` ``[rows, M]`` of one block -> ``g_xb [rows, a]`` (and ``g_w [M, a]`` +=) for
    ``l = x w^T - sq_scale |x[:d]|^2 / 2``."""
    torch.mm(g_l, wt.t(), out=g_xb)
    g_xb[:, :d].addcmul_(xb[:, :d], g_l.sum(-1, keepdim=True), value=-sq_scale)
    if g_w is not None:
        g_w.addmm_(g_l.t(), xb)


class FavorLinear(torch.autograd.Function):
    """``(xq, wq, yk, wk, v_ext, eps, sq_scale, d[, key_pad]) -> ratio((phi(Q) + eq) ((phi(K) + ek)^T v_ext))``;
    ``xq, yk [B, H, N, a]`` whose first ``d`` columns are the raw inputs ``q, k``, ``wq, wk [M, a] |
    [B, H, M, a]`` (gradient only when required), ``v_ext [B, H, N, Dh+1]`` (last column ones),
    ``key_pad [B|1, H|1, N]`` (0, or -1e30 for a hidden key) or None -> ``[B, H, N, Dh]``, with
    ``phi = exp(l - c)``, ``l = x' w'^T - sq_scale |x[:d]|^2 / 2 (+ key_pad)`` and ``e = eps e^-c``
    (:func:`effx_performer.features.stabilised_features`). The normalisation follows
    :func:`effx_performer.favor.ratio`."""

    @staticmethod
    def forward(ctx, xq, wq, yk, wk, v_ext, eps, sq_scale, d, key_pad=None):
        b, h, n, _ = xq.shape
        rq, rk = row_term(xq[..., :d], sq_scale), row_term(yk[..., :d], sq_scale)  # (B, H, N)
        if key_pad is not None:
            rk = rk + key_pad
        bh, e_dim = b * h, v_ext.shape[-1]
        x, wqt = _flat(xq, wq)  # (BH, N, a), (BH, a, M)
        y, wkt = _flat(yk, wk)
        rq, rk = rq.reshape(bh, n, 1), rk.reshape(bh, n, 1)
        ve = v_ext.reshape(bh, n, e_dim).contiguous()
        kv, c_k = _key_state(y, wkt, rk, ve, eps)  # (BH, M, E), (BH, 1, 1)
        out_ext = torch.empty(bh, n, e_dim, dtype=ve.dtype, device=ve.device)  # numerator | normaliser
        col_kv = kv.sum(1, keepdim=True)  # (BH, 1, E)
        for i in range(bh):
            for s, e in blocks(n, wqt.shape[-1]):
                f, eq = _query_block(x[i, s:e], wqt[i], rq[i, s:e], eps)  # (rows, M), (rows, 1)
                torch.mm(f, kv[i], out=out_ext[i, s:e])
                if eq is not None:
                    out_ext[i, s:e].addcmul_(eq, col_kv[i])
        den = out_ext[..., -1:]  # (BH, N, 1)
        inv = torch.where(den > DEN_FLOOR, den, torch.inf).reciprocal_()  # 0 where no key is seen
        out = out_ext[..., :-1].mul_(inv)  # (BH, N, Dh), in place, a view of out_ext
        ctx.save_for_backward(xq, wq, yk, wk, v_ext, kv, c_k, out, inv, rq, rk)  # all O(N Dh) or smaller
        ctx.eps, ctx.sq_scale, ctx.d = eps, sq_scale, d
        return out.view(b, h, n, e_dim - 1)

    @staticmethod
    def backward(ctx, grad):  # grad (B, H, N, Dh)
        xq, wq, yk, wk, v_ext, kv, c_k, out, inv, rq, rk = ctx.saved_tensors
        eps, sq_scale, d = ctx.eps, ctx.sq_scale, ctx.d
        b, h, n, _ = xq.shape
        bh = b * h
        x, wqt = _flat(xq, wq)
        y, wkt = _flat(yk, wk)
        ve = v_ext.reshape(bh, n, -1).contiguous()
        grad = grad.reshape(bh, n, -1)
        g_den = (grad * out).sum(-1, keepdim=True).neg_()  # (BH, N, 1): d out / d normaliser * den
        grad = torch.cat([grad, g_den], dim=-1).mul_(inv)  # (BH, N, E): d loss / d out_ext
        m = wqt.shape[-1]
        g_kv = torch.zeros_like(kv)  # (BH, M, E)
        g_x, g_y, g_v = torch.empty_like(x), torch.empty_like(y), torch.empty_like(ve)
        g_wq = x.new_zeros(bh, m, x.shape[-1]) if ctx.needs_input_grad[1] else None
        g_wk = y.new_zeros(bh, m, y.shape[-1]) if ctx.needs_input_grad[3] else None
        for i in range(bh):
            for s, e in blocks(n, m):  # queries: recompute features, d loss / d kv and d loss / d xq
                f, eq = _query_block(x[i, s:e], wqt[i], rq[i, s:e], eps)  # (rows, M)
                if eq is not None:  # the constant query feature eq
                    g_kv[i].add_((grad[i, s:e] * eq).sum(0, keepdim=True))
                g_kv[i].addmm_(f.t(), grad[i, s:e])
                g_l = torch.mm(grad[i, s:e], kv[i].t(), out=_buffer(GRAD_SLOT, f.shape, f)).mul_(f)
                _input_grad(g_l, wqt[i], x[i, s:e], d, sq_scale, g_x[i, s:e], None if g_wq is None else g_wq[i])
            col_gkv = g_kv[i].sum(0, keepdim=True) * (torch.exp(-c_k[i]) * eps) if eps else None  # (1, E)
            for s, e in blocks(n, m):  # keys: recompute features, d loss / d v_ext and d loss / d yk
                f = _key_block(y[i, s:e], wkt[i], rk[i, s:e], c_k[i])  # (rows, M)
                torch.mm(f, g_kv[i], out=g_v[i, s:e])
                if col_gkv is not None:
                    g_v[i, s:e].add_(col_gkv)
                g_l = torch.mm(ve[i, s:e], g_kv[i].t(), out=_buffer(GRAD_SLOT, f.shape, f)).mul_(f)
                _input_grad(g_l, wkt[i], y[i, s:e], d, sq_scale, g_y[i, s:e], None if g_wk is None else g_wk[i])
        if g_wq is not None:  # (BH, M, a) -> the shape of wq (summed over B, H for a shared one)
            g_wq = g_wq.sum(0) if wq.dim() == 2 else g_wq.view(wq.shape)
        if g_wk is not None:
            g_wk = g_wk.sum(0) if wk.dim() == 2 else g_wk.view(wk.shape)
        return (g_x.view(xq.shape), g_wq, g_y.view(yk.shape), g_wk, g_v.view(v_ext.shape),
                None, None, None, None)


def _key_state(y, wt, r, ve, eps):
    """``sum_j (phi(k_j) + ek) v_ext_j`` ``[BH, M, E]`` and the final per-head ``c_K [BH, 1, 1]``,
    online over key blocks (``c_K = max(max over visible (j, m) of l_jm, log eps, NO_KEY)``)."""
    bh, n, e_dim = ve.shape
    m = wt.shape[-1]
    kv = ve.new_zeros(bh, m, e_dim)
    c_k = ve.new_full((bh, 1, 1), math.log(eps) if eps else NO_KEY)
    for i in range(bh):
        c = c_k[i]  # (1, 1), a view: updated in place
        for s, e in blocks(n, m):
            f = _logits(y[i, s:e], wt[i])  # (rows, M)
            rb = r[i, s:e]  # (rows, 1)
            c_new = torch.maximum(c, (f.amax(-1, keepdim=True) + rb).amax(0, keepdim=True))  # (1, 1)
            kv[i].mul_(torch.exp(c - c_new))  # re-stabilise what was accumulated with the old c
            c.copy_(c_new)
            kv[i].addmm_(f.sub_(c - rb).exp_().t(), ve[i, s:e])
    if eps:
        kv.add_(ve.sum(1, keepdim=True) * torch.exp(-c_k) * eps)  # (F + ek)^T v = F^T v + ek colsum(v)
    return kv, c_k
