"""The FAVOR+ linear-attention core as one autograd Function with a hand-written backward.

Same math as composing :func:`effx_performer.features.stabilised_features` with
``phi(Q) (phi(K)^T [V, 1])`` and :func:`effx_performer.favor.ratio` under autograd (the tests check
values and gradients against that, and float64 gradcheck against finite differences), organised
around memory traffic:

* the sequence is processed in row blocks, and the heads of a batch in groups, so that one block
  of a group, ``[heads, rows, M]``, stays in cache: ONE matmul (one 2-D matmul over all the group's
  rows when the projection is shared) writes the logits into a reusable work buffer, one in-place
  pass subtracts the stabiliser and the ``-|x|^2/2`` row term, one applies ``exp``, and the block is
  consumed by the next matmul before it leaves the cache. A long sequence is one head per group,
  many blocks; a batch of short ones is a few groups of many heads, one block each (a per-head loop
  would spend its time dispatching small ops). Row boundaries depend on ``M`` only, and a head's
  arithmetic does not depend on its group, so outputs do not depend on the batch;
* stabilised logits are raised to ``LOG_FLOOR`` (-60) before ``exp``: features below ``e^-60`` of
  the largest become ``e^-60``, a change far below fp32 resolution (and a padded key still
  contributes exactly 0: its ``[v, 1]`` row is 0). ``exp`` of arguments whose results are subnormal,
  or of ``-1e30``, takes a slow path 50-100x slower on x86 CPUs;
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
BLOCK_ELEMENTS = 1 << 18  # values of one head's [rows, M] block: 1 MiB in fp32
GROUP_ELEMENTS = 1 << 18  # values of a [heads, rows, M] block of a head group: stays in L2
NO_KEY = -1e29  # floor of the key stabiliser: a padded key (row term -1e30) never sets it
# Stabilised logits are raised to this before exp: features of at least e^-60 (~1e-26) relative to
# the largest, a change far below fp32 resolution, and no exp() of an argument whose result is
# subnormal or of -1e30 (padding) - those take a slow path, 50-100x slower on x86 CPUs.
LOG_FLOOR = -60.0


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


def head_groups(bh: int, n: int, m: int) -> list[slice]:
    """Groups of heads processed together: as many as fill :data:`GROUP_ELEMENTS` with one block
    each, so short sequences of a large batch run as a few large matmuls (a head's arithmetic does
    not depend on the group it is in)."""
    rows = min(n, blocks(n, m)[0][1]) if n else 1
    size = max(1, GROUP_ELEMENTS // max(1, rows * m))
    return [slice(h, min(bh, h + size)) for h in range(0, bh, size)]


def _heads(wt: torch.Tensor, g: slice) -> torch.Tensor:
    """The heads ``g`` of a per-head operand ``[BH, ...]``; a shared 2-D one as it is."""
    return wt if wt.dim() == 2 else wt[g]


def _flat(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [B, H, N, a]``, ``w [M, a] | [B, H, M, a]`` -> ``x [BH, N, a]`` (contiguous), ``w^T [a, M]``
    (shared by every head) ``| [BH, a, M]``."""
    b, h, n, a = x.shape
    m = w.shape[-2]
    wt = w.t() if w.dim() == 2 else w.reshape(b * h, m, a).transpose(1, 2)
    return x.reshape(b * h, n, a).contiguous(), wt


def _matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a [BH, r, k] @ b [k, n] | [BH, k, n]`` -> ``[BH, r, n]``: one 2-D matmul over all heads'
    rows when ``b`` is shared (``a`` is then folded, copied only when it is a strided block)."""
    if b.dim() == 2:
        res = torch.mm(a.reshape(-1, a.shape[-1]), b, out=None if out is None else out.view(-1, b.shape[-1]))
        return res.view(*a.shape[:-1], b.shape[-1])
    return torch.bmm(a, b, out=out)


def _weight_grad(g_w: torch.Tensor, g_l: torch.Tensor, xb: torch.Tensor) -> None:
    """``g_w [M, a] | [BH, M, a] += g_l^T xb`` summed over the heads that share ``w``."""
    if g_w.dim() == 2:
        g_w.addmm_(g_l.reshape(-1, g_l.shape[-1]).t(), xb.reshape(-1, xb.shape[-1]))
    else:
        g_w.baddbmm_(g_l.transpose(1, 2), xb)


def _logits(xb: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """``xb [BH, rows, a] @ wt [a, M] | [BH, a, M]`` in the logit work buffer -> ``[BH, rows, M]``."""
    out = _buffer(LOGIT_SLOT, (xb.shape[0], xb.shape[1], wt.shape[-1]), xb)
    return _matmul(xb, wt, out=out)


def _query_block(xb, wt, rb, eps):
    """Query features of one block of every head: ``exp(l + r - c)`` ``[BH, rows, M]`` (in the work
    buffer) and ``eps e^-c`` ``[BH, rows, 1]``, ``c = max(max_m (l + r), log eps)`` per row;
    ``rb [BH, rows, 1]``."""
    f = _logits(xb, wt)  # (BH, rows, M)
    c = f.amax(-1, keepdim=True).add_(rb)  # (BH, rows, 1)
    if eps:
        c.clamp_min_(math.log(eps))
    return f.sub_(c - rb).clamp_min_(LOG_FLOOR).exp_(), (torch.exp(-c).mul_(eps) if eps else None)


def _key_block(yb, wt, rb, c):
    """Key features of one block stabilised by each head's ``c [BH, 1, 1]`` (in the work buffer)."""
    return _logits(yb, wt).sub_(c - rb).clamp_min_(LOG_FLOOR).exp_()  # (BH, rows, M)


def _input_grad(g_l, wt, xb, d, sq_scale, g_w):
    """``g_l = dL/dl`` ``[BH, rows, M]`` of one block -> ``dL/dx [BH, rows, a]`` (and ``g_w`` +=)
    for ``l = x w^T - sq_scale |x[:d]|^2 / 2``."""
    g_xb = _matmul(g_l, wt.transpose(-2, -1))  # (BH, rows, a)
    g_xb[..., :d].addcmul_(xb[..., :d], g_l.sum(-1, keepdim=True), value=-sq_scale)
    if g_w is not None:
        _weight_grad(g_w, g_l, xb)
    return g_xb


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
        x, wqt = _flat(xq, wq)  # (BH, N, a), (a, M) | (BH, a, M)
        y, wkt = _flat(yk, wk)
        rq, rk = rq.reshape(bh, n, 1), rk.reshape(bh, n, 1)
        ve = v_ext.reshape(bh, n, e_dim).contiguous()
        kv = ve.new_empty(bh, wqt.shape[-1], e_dim)  # (BH, M, E)
        c_k = ve.new_empty(bh, 1, 1)  # (BH, 1, 1)
        out_ext = torch.empty(bh, n, e_dim, dtype=ve.dtype, device=ve.device)  # numerator | normaliser
        for g in head_groups(bh, n, wqt.shape[-1]):
            kv[g], c_k[g] = _key_state(y[g], _heads(wkt, g), rk[g], ve[g], eps)
            _query_pass(x[g], _heads(wqt, g), rq[g], kv[g], eps, out_ext[g])
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
        g_kv = torch.empty_like(kv)  # (BH, M, E), zeroed per head group
        g_x, g_y, g_v = torch.empty_like(x), torch.empty_like(y), torch.empty_like(ve)
        g_wq = _grad_buffer(wq, bh) if ctx.needs_input_grad[1] else None  # (M, a) | (BH, M, a)
        g_wk = _grad_buffer(wk, bh) if ctx.needs_input_grad[3] else None
        for g in head_groups(bh, n, m):
            _backward_heads((x[g], _heads(wqt, g), rq[g]), (y[g], _heads(wkt, g), rk[g]), ve[g], grad[g],
                            kv[g], c_k[g], eps, sq_scale, d, (g_kv[g], g_x[g], g_y[g], g_v[g]),
                            (_grad_slice(g_wq, g), _grad_slice(g_wk, g)))
        g_wq = None if g_wq is None else g_wq.view(wq.shape)
        g_wk = None if g_wk is None else g_wk.view(wk.shape)
        return (g_x.view(xq.shape), g_wq, g_y.view(yk.shape), g_wk, g_v.view(v_ext.shape),
                None, None, None, None)


def _query_pass(x, wt, r, kv, eps, out_ext) -> None:
    """``out_ext [G, N, E] = (phi(Q) + eq) kv`` for a head group, block by block."""
    col_kv = kv.sum(1, keepdim=True)  # (G, 1, E)
    for s, e in blocks(x.shape[1], wt.shape[-1]):
        f, eq = _query_block(x[:, s:e], wt, r[:, s:e], eps)  # (G, rows, M), (G, rows, 1)
        block = torch.bmm(f, kv)  # (G, rows, E)
        out_ext[:, s:e] = block if eq is None else block.addcmul_(eq, col_kv)


def _backward_heads(qside, kside, ve, grad, kv, c_k, eps, sq_scale, d, grads, w_grads) -> None:
    """Gradients of a head group: ``qside = (x, wt, r)`` of the queries, ``kside`` of the keys,
    ``grad [G, N, E]`` = d loss / d out_ext; writes ``grads = (g_kv, g_x, g_y, g_v)`` and adds to
    ``w_grads = (g_wq, g_wk)`` (None: not needed)."""
    (x, wqt, rq), (y, wkt, rk) = qside, kside
    g_kv, g_x, g_y, g_v = grads
    g_kv.zero_()
    n, m = x.shape[1], wqt.shape[-1]
    for s, e in blocks(n, m):  # queries: recompute features, d loss / d kv and d loss / d xq
        f, eq = _query_block(x[:, s:e], wqt, rq[:, s:e], eps)  # (G, rows, M)
        gb = grad[:, s:e]  # (G, rows, E)
        if eq is not None:  # the constant query feature eq
            g_kv.add_((gb * eq).sum(1, keepdim=True))
        g_kv.baddbmm_(f.transpose(1, 2), gb)
        g_l = torch.bmm(gb, kv.transpose(1, 2), out=_buffer(GRAD_SLOT, f.shape, f)).mul_(f)
        g_x[:, s:e] = _input_grad(g_l, wqt, x[:, s:e], d, sq_scale, w_grads[0])
    col_gkv = g_kv.sum(1, keepdim=True) * (torch.exp(-c_k) * eps) if eps else None  # (G, 1, E)
    for s, e in blocks(n, m):  # keys: recompute features, d loss / d v_ext and d loss / d yk
        f = _key_block(y[:, s:e], wkt, rk[:, s:e], c_k)  # (G, rows, M)
        block = torch.bmm(f, g_kv)  # (G, rows, E)
        g_v[:, s:e] = block if col_gkv is None else block.add_(col_gkv)
        g_l = torch.bmm(ve[:, s:e], g_kv.transpose(1, 2), out=_buffer(GRAD_SLOT, f.shape, f)).mul_(f)
        g_y[:, s:e] = _input_grad(g_l, wkt, y[:, s:e], d, sq_scale, w_grads[1])


def _grad_slice(g_w: torch.Tensor | None, g: slice) -> torch.Tensor | None:
    """The heads ``g`` of a per-head weight-gradient accumulator; a shared one as it is."""
    return g_w if g_w is None or g_w.dim() == 2 else g_w[g]


def _grad_buffer(w: torch.Tensor, bh: int) -> torch.Tensor:
    """Zeroed gradient accumulator of ``w [M, a]`` (shared: one, summed over heads) or ``[B, H, M, a]``."""
    return w.new_zeros(w.shape) if w.dim() == 2 else w.new_zeros(bh, *w.shape[-2:])


def _key_state(y, wt, r, ve, eps):
    """``sum_j (phi(k_j) + ek) v_ext_j`` ``[BH, M, E]`` and the final per-head ``c_K [BH, 1, 1]``,
    online over key blocks (``c_K = max(max over visible (j, m) of l_jm, log eps, NO_KEY)``)."""
    bh, n, e_dim = ve.shape
    m = wt.shape[-1]
    kv = ve.new_zeros(bh, m, e_dim)
    c_k = ve.new_full((bh, 1, 1), math.log(eps) if eps else NO_KEY)
    for s, e in blocks(n, m):
        f = _logits(y[:, s:e], wt)  # (BH, rows, M)
        rb = r[:, s:e]  # (BH, rows, 1)
        c_new = torch.maximum(c_k, (f.amax(-1, keepdim=True) + rb).amax(1, keepdim=True))  # (BH, 1, 1)
        kv.mul_(torch.exp(c_k - c_new))  # re-stabilise what was accumulated with the old c
        c_k = c_new
        kv.baddbmm_(f.sub_(c_k - rb).clamp_min_(LOG_FLOOR).exp_().transpose(1, 2), ve[:, s:e])
    if eps:
        kv.add_(ve.sum(1, keepdim=True) * torch.exp(-c_k) * eps)  # (F + ek)^T v = F^T v + ek colsum(v)
    return kv, c_k
