"""Chunked attention over hash-sorted slots: the engine shared by the Reformer attention types.

Reformer (Kitaev, Kaiser & Levskaya, "Reformer: The Efficient Transformer", ICLR 2020, Sec. 3):
for every hash round ``r`` a permutation sorts the queries (and keys) so that vectors hashed alike
are adjacent; the sorted sequence is cut into chunks of ``bs`` slots and query chunk ``c`` attends
to key chunks ``c-1, c, c+1`` of the same round (the paper looks one chunk back; a bidirectional
encoder also looks one forward). Each round yields an output normalised by its own log-sum-exp;
the rounds are combined with weights ``softmax_r(lse_r)``, which equals one softmax over the union
of the compared pairs provided no pair is counted twice. A pair compared in several rounds is
therefore kept only in the first round that compares it (equivalent to the paper's ``-log(count)``
correction, at half the comparisons).

Where memory goes (T = B*H*R*N/bs chunks): one score buffer ``(T, bs, 3*bs)`` that becomes the
probabilities in place and is kept for backward, and its gradient in backward. Keys and values
are one padded sorted copy ``((T+2)*bs, Dh)`` read through overlapping strided windows, never
copied three times. There is no ``N x N`` tensor; a dense ``attn_mask`` is gathered only for the
compared pairs.
"""
from __future__ import annotations

import math
import threading
from functools import partial

import attrs
import torch
import torch.nn.functional as F

from effx import attn_mask_4d

MASKED = -1e30  # score of a pair that may not be attended (finite, so softmax never sees -inf - -inf)
SELF = -1e5  # shared-QK score of a token with itself: used only when no other key is allowed
DEAD = -1e29  # a row maximum below this means the query compared no allowed key
DUP_SCALE = 1e15  # chunk ids are stored times this: the squared-distance penalty of neighbours is < DEAD


def windows(x: torch.Tensor, bs: int, t: int) -> torch.Tensor:
    """Contiguous ``((T+2)*bs, *F)`` padded rows -> overlapping view ``(T, 3*bs, *F)``: chunk c sees c-1..c+1."""
    inner = x.stride(0)
    return x.as_strided((t, 3 * bs, *x.shape[1:]), (bs * inner, *x.stride()))


_SCRATCH = threading.local()


def _normal_empty(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A plain tensor even inside ``inference_mode``, so a cached buffer serves training steps too."""
    with torch.inference_mode(False):
        return torch.empty(numel, dtype=dtype, device=device)


def scratch(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat buffer reused across calls of this thread (dedup penalties, score gradients): avoids
    faulting in ~200 MB of fresh pages every step. Callers must not keep it past their call."""
    cache = _SCRATCH.__dict__.setdefault("buffers", {})
    key = (torch.device(device), dtype)
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        cache[key] = buf = None  # free the old one first
        cache[key] = buf = _normal_empty(numel, dtype, device)
    return buf[:numel]


class BufferPool:
    """Large buffers of one attention module recycled from step to step.

    The backward hands back the buffers it saved (sorted q/k/v, probabilities) and the next forward
    writes into them instead of faulting in fresh pages (~0.4 GB per layer at N=16k). Writing bumps
    the tensors' version counters, so a retained graph that is run backward again after a later forward
    raises autograd's in-place error instead of using overwritten values.
    """

    def __init__(self) -> None:
        self.free: list[torch.Tensor] = []

    def take(self, shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        numel = math.prod(shape)
        for i, buf in enumerate(self.free):
            if buf.dtype == dtype and buf.device == device and buf.numel() >= numel:
                return self.free.pop(i)[:numel].view(shape)
        return _normal_empty(numel, dtype, device).view(shape)

    def give(self, *tensors: torch.Tensor | None) -> None:
        self.free.extend(t.view(-1) for t in tensors if t is not None)
        self.free = self.free[-4:]


def window_grad(w: torch.Tensor, x: torch.Tensor, alpha: float = 1.0, out: torch.Tensor | None = None) -> torch.Tensor:
    """Transpose of the window product: ``alpha * w^T x`` for ``w (T, bs, 3bs)``, ``x (T, bs, D)``,
    folded back onto the padded key rows ``((T+2)*bs, D)``.

    Row block ``j`` of window ``c`` belongs to padded chunk ``c + j``: the centre blocks fill chunks
    1..T, the back and forward blocks accumulate onto them (no zero-filled buffer).
    """
    t, bs, d = x.shape
    out = x.new_empty(t + 2, bs, d) if out is None else out.view(t + 2, bs, d)  # (T+2, bs, D)
    out[0].zero_()
    out[t + 1].zero_()
    blocks = [w[:, :, j * bs:(j + 1) * bs].transpose(1, 2) for j in range(3)]  # 3 x (T, bs, bs)
    out[1:t + 1].baddbmm_(blocks[1], x, beta=0, alpha=alpha)
    out[:t].baddbmm_(blocks[0], x, alpha=alpha)
    out[2:].baddbmm_(blocks[2], x, alpha=alpha)
    return out.view(-1, d)


def softmax_(s: torch.Tensor) -> torch.Tensor:
    """In place: scores ``(T, bs, 3bs)`` -> probabilities. Returns the log-sum-exp ``(T, bs)``.

    A query with no allowed key gets an all-zero row and ``lse = MASKED`` (weight 0 when rounds mix).
    """
    m = s.amax(-1)  # (T, bs)
    torch.softmax(s, -1, out=s)
    lse = m - s.amax(-1).log()  # max prob = 1 / sum(exp(s - m))
    dead = m < DEAD
    if bool(dead.any()):
        s.masked_fill_(dead.unsqueeze(-1), 0.0)
        lse = lse.masked_fill(dead, MASKED)
    return lse


@attrs.frozen
class ScoreMasks:
    """Everything that edits the scores in place before the softmax (none of it is differentiable).

    ``key_bias (T, 1, 3bs)``: 0 or MASKED per window key (padding, chunks outside the round).
    ``allowed (T, bs, 3bs)``: the user's dense attn_mask gathered for the compared pairs, or None.
    ``q_chunks (T, bs, R)`` / ``k_chunks (T, 3bs, R)``: chunk of each slot's token in every round
    (for duplicate removal), or None. ``shape = (B*H, R, nc, bs)``.
    """

    key_bias: torch.Tensor
    self_score: bool
    allowed: torch.Tensor | None
    q_chunks: torch.Tensor | None
    k_chunks: torch.Tensor | None
    shape: tuple

    def apply_(self, s: torch.Tensor) -> None:
        t, bs, _ = s.shape
        if self.self_score:  # diagonal of the centre block: slot i of chunk c against itself
            s.as_strided((t, bs), (s.stride(0), s.stride(1) + 1), s.storage_offset() + bs).fill_(SELF)
        s.add_(self.key_bias)
        if self.allowed is not None:
            s.masked_fill_(~self.allowed, MASKED)
        if self.q_chunks is not None:
            self._drop_duplicates_(s)

    def _drop_duplicates_(self, s: torch.Tensor) -> None:
        """Mask in round r every pair already compared in a round r' < r: |chunk_r'(q) - chunk_r'(k)| <= 1.

        Chunk ids arrive scaled by ``DUP_SCALE`` (``u``), so ``d^2 - 2.25 u^2`` is already the penalty:
        ``<= -1.25 u^2`` (masked) for neighbours, ``>= 1.75 u^2`` (or inf: no effect) otherwise.
        """
        bh, r, nc, bs = self.shape
        s5 = s.view(bh, r, nc, bs, 3 * bs)
        cq = self.q_chunks.view(bh, r, nc, bs, r)
        ck = self.k_chunks.view(bh, r, nc, 3 * bs, r)
        buf = scratch(s5[:, 1:].numel(), s.dtype, s.device)
        offset = torch.tensor(-2.25 * DUP_SCALE**2, dtype=s.dtype, device=s.device)
        for rp in range(r - 1):  # earlier round r'; all later rounds at once
            later = s5[:, rp + 1:]  # (BH, R-r'-1, nc, bs, 3bs)
            dist = torch.sub(cq[:, rp + 1:, :, :, rp, None], ck[:, rp + 1:, :, None, :, rp],
                             out=buf[:later.numel()].view(later.shape))
            pen = torch.addcmul(offset, dist, dist, out=dist)
            torch.minimum(later, pen, out=later)


class LSHCore(torch.autograd.Function):
    """Sort-gather, windowed softmax attention, unsort and round mixing in one step, with a
    hand-written backward: only the probabilities, the sorted q/k/v and the round weights are kept,
    and the backward gathers (never scatters) gradients back to positions.

    Round mixing ``out_p = sum_r w_pr o_pr`` with ``w = softmax_r(lse)`` folds into the score
    gradient: ``dS = P * (dP - w * (g . out))`` with ``dP = (w g) V^T`` (``g = dL/dout``).
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, plan: "Plan", dropout_p: float, unused_k):
        # q, k, v (B, H, N, D) (k: unit queries under shared-QK); bias (T, bs, 3bs) or None;
        # unused_k: the caller's k under shared-QK (its gradient is zero, not missing), else None.
        # 1/sqrt(D) is folded into the matmuls.
        t, bs, d = plan.t, plan.bs, q.shape[-1]
        take = partial(plan.pool.take, dtype=q.dtype, device=q.device)
        qs = torch.index_select(q.reshape(-1, d), 0, plan.qrows, out=take((t * bs, d))).view(t, bs, d)
        ks = torch.index_select(k.reshape(-1, d), 0, plan.krows, out=take(((t + 2) * bs, d)))
        vs = torch.index_select(v.reshape(-1, d), 0, plan.krows, out=take(((t + 2) * bs, d)))
        # (T, bs, D) and ((T+2)*bs, D) x 2; then the scores (T, bs, 3bs): the one big buffer
        s = take((t, bs, 3 * bs))
        s.baddbmm_(qs, windows(ks, bs, t).transpose(1, 2), beta=0, alpha=d ** -0.5)
        plan.masks.apply_(s)
        if bias is not None:
            s.add_(bias)
        lse = softmax_(s)  # s now holds P
        keep = None
        if dropout_p > 0:
            keep = torch.empty_like(s, dtype=torch.bool).bernoulli_(1 - dropout_p)
            o = torch.bmm(s * keep / (1 - dropout_p), windows(vs, bs, t))  # (T, bs, D)
        else:
            o = torch.bmm(s, windows(vs, bs, t))  # (T, bs, D)
        out, w_slots = mix_rounds(o, lse, plan)
        ctx.plan, ctx.dropout_p, ctx.has_bias = plan, dropout_p, bias is not None
        if plan.needs_grad:
            ctx.save_for_backward(qs, ks, vs, s, keep, w_slots, out)
        else:
            plan.pool.give(qs, ks, vs, s)
        return out.view_as(q)

    @staticmethod
    def backward(ctx, g):
        plan, t, bs = ctx.plan, ctx.plan.t, ctx.plan.bs
        qs, ks, vs, p, keep, w, out = ctx.saved_tensors
        d = g.shape[-1]
        g = g.reshape(-1, d)  # (B*H*N, D)
        c = (g * out).sum(-1)  # (B*H*N,) g . out
        delta = (c.index_select(0, plan.qrows).view(t, bs) * w).unsqueeze(-1)  # (T, bs, 1)
        gs = g.index_select(0, plan.qrows).view(t, bs, d).mul_(w.unsqueeze(-1))  # (T, bs, D) dL/do
        buf = scratch(max(p.numel(), ks.numel()), p.dtype, p.device)  # holds dV (sorted) now, dP below
        dv_sorted = buf[:ks.numel()]
        if keep is not None:
            inv_keep = 1.0 / (1 - ctx.dropout_p)
            dv = unsort_sum(window_grad(p * keep * inv_keep, gs, out=dv_sorted), plan.kback, plan.shape)
        else:
            dv = unsort_sum(window_grad(p, gs, out=dv_sorted), plan.kback, plan.shape)  # (B, H, N, D)
        vw_t = windows(vs, bs, t).transpose(1, 2)
        if ctx.has_bias:  # dS is returned as the bias gradient: it needs its own buffer
            dp = torch.bmm(gs, vw_t)  # (T, bs, 3bs)
        else:
            dp = torch.bmm(gs, vw_t, out=buf[:p.numel()].view_as(p))
        if keep is not None:
            dp.mul_(keep).mul_(inv_keep)
        dp.sub_(delta).mul_(p)  # dS, in the dP buffer
        scale = d ** -0.5
        dq_sorted = torch.bmm(dp, windows(ks, bs, t), out=gs).mul_(scale)  # (T, bs, D), in gs's buffer
        dq = unsort_sum(dq_sorted, plan.qback, plan.shape)  # (B, H, N, D)
        dk = unsort_sum(window_grad(dp, qs, scale), plan.kback, plan.shape)  # (B, H, N, D)
        plan.pool.give(qs, ks, vs, p)
        dk_unused = torch.zeros_like(dk) if ctx.needs_input_grad[6] else None
        return dq, dk, dv, (dp if ctx.has_bias else None), None, None, dk_unused


def mix_rounds(o: torch.Tensor, lse: torch.Tensor, plan: "Plan") -> tuple[torch.Tensor, torch.Tensor]:
    """Unsort the rounds and mix them by ``softmax_r(lse_r)``: ``o (T, bs, D)`` -> ``(B*H*N, D)``.

    Also returns each slot's round weight ``(T, bs)`` (0 for padding slots) for the backward.
    """
    r = plan.shape[3]
    d = o.shape[-1]
    w = torch.softmax(lse.view(-1).index_select(0, plan.qback).view(-1, r), dim=-1)  # (B*H*N, R)
    bags = plan.qback.view(-1, r)  # (B*H*N, R): each position's slot in every round
    out = F.embedding_bag(bags, o.view(-1, d), mode="sum", per_sample_weights=w)  # (B*H*N, D)
    w_slots = w.view(-1).index_select(0, plan.wrows).masked_fill_(plan.qpad, 0.0)  # (T*bs,)
    return out, w_slots.view(plan.t, plan.bs)


def unsort_sum(x: torch.Tensor, back: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Sorted rows ``(*, D)`` -> ``(B, H, N, D)``: each position's rows of every round, summed in one pass."""
    b, h, n, r = shape
    d = x.shape[-1]
    return F.embedding_bag(back.view(-1, r), x.reshape(-1, d), mode="sum").view(b, h, n, d)


@attrs.frozen
class Plan:
    """Index maps of one forward (no gradients). ``shape = (B, H, N, R)``; slots are ``T*bs``.

    ``qrows``/``krows``: source row in ``(B*H*N, D)`` of each query slot / padded key slot.
    ``qback``/``kback``: ``(B*H*N*R,)`` slot of every (position, round) in the query / padded key layout.
    ``wrows``: index in ``(B*H*N*R,)`` of each query slot; ``qpad``: query slots that are padding.
    """

    shape: tuple
    t: int
    bs: int
    qrows: torch.Tensor
    krows: torch.Tensor
    qback: torch.Tensor
    kback: torch.Tensor
    wrows: torch.Tensor
    qpad: torch.Tensor
    masks: ScoreMasks
    pool: BufferPool
    needs_grad: bool


def inverse(perm: torch.Tensor) -> torch.Tensor:
    """``(..., Np)`` permutation (slot -> position) -> (position -> slot)."""
    ar = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(-1, perm, ar)


def _offsets(groups: int, step: int, like: torch.Tensor) -> torch.Tensor:
    """``step * g`` for every group g, shaped to broadcast over ``like``'s last dim."""
    return torch.arange(0, groups * step, step, device=like.device).view(*like.shape[:-1], 1)


def _padded_windows(flat: torch.Tensor, bs: int, t: int, value=0) -> torch.Tensor:
    """``(T*bs,)`` per-slot values -> ``(T, 3bs)`` copy of each chunk's key window (outer pads: value)."""
    padded = F.pad(flat, (bs, bs), value=value)  # ((T+2)*bs,)
    return windows(padded.unsqueeze(-1), bs, t).squeeze(-1).clone()  # (T, 3bs)


def _key_bias(kperm: torch.Tensor, kpm: torch.Tensor | None, n: int, bs: int, t: int) -> torch.Tensor:
    """0 / MASKED per window key: padding slots, padded keys, and chunks from another round."""
    b, h, r, npad = kperm.shape
    if kpm is None:
        masked = kperm >= n  # (B, H, R, Np)
    else:
        kpm_pad = F.pad(~kpm, (0, npad - n), value=True)  # (B, Np) True = padding
        masked = torch.gather(kpm_pad[:, None, None, :].expand(b, h, r, npad), 3, kperm)
    bias = torch.where(masked, MASKED, 0.0).reshape(-1)  # (T*bs,)
    win = _padded_windows(bias, bs, t, MASKED).view(b * h * r, -1, 3, bs)  # (G, nc, 3, bs)
    win[:, 0, 0] = MASKED  # the first chunk of a round has no chunk behind it
    win[:, -1, 2] = MASKED  # the last has none ahead
    return win.view(t, 1, 3 * bs)  # (T, 1, 3bs)


def _chunk_ids(slots: torch.Tensor, inv: torch.Tensor, bs: int) -> torch.Tensor:
    """Chunk of each sorted slot's token in every round, times DUP_SCALE: ``(G*Np, R)``.

    ``slots (G*Np,)``: flat index ``(b*H + h)*Np + position`` of every slot's token.
    """
    b, h, r, npad = inv.shape
    by_pos = torch.div(inv, bs, rounding_mode="floor").permute(0, 1, 3, 2).reshape(b * h * npad, r)  # (B*H*Np, R)
    return by_pos.index_select(0, slots).float().mul_(DUP_SCALE)  # (G*Np, R)


def _gather_attn_mask(attn_mask, qperm, kpos_w, n: int, bs: int) -> torch.Tensor:
    """The user's dense mask at the compared pairs only: ``(T, bs, 3bs)`` bool."""
    b, h, r, npad = qperm.shape
    am = attn_mask_4d(attn_mask, b, h, n)  # (B|1, H|1, N, N)
    bi = torch.arange(b, device=am.device).view(b, 1, 1, 1, 1) if am.shape[0] > 1 else 0
    hi = torch.arange(h, device=am.device).view(1, h, 1, 1, 1) if am.shape[1] > 1 else 0
    qi = qperm.clamp(max=n - 1).view(b, h, -1, bs, 1)  # (B, H, R*nc, bs, 1)
    ki = kpos_w.clamp(max=n - 1).view(b, h, -1, 1, 3 * bs)  # (B, H, R*nc, 1, 3bs)
    return am[bi, hi, qi, ki].reshape(-1, bs, 3 * bs)  # (T, bs, 3bs)


def _back(inv: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, H, R, Np)`` position -> slot maps to ``(B*H*N*R,)`` flat slots in (B, H, N, R) order."""
    g, npad = inv.shape[0] * inv.shape[1] * inv.shape[2], inv.shape[3]
    return (inv[..., :n] + _offsets(g, npad, inv)).permute(0, 1, 3, 2).reshape(-1)


def _rows(perm: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, H, R, Np)`` sorted positions -> flat row indices into ``(B*H*N, D)``; padding reads row N-1."""
    b, h, r, _ = perm.shape
    base = torch.arange(0, b * h * n, n, device=perm.device).view(b, h, 1, 1)
    return (perm.clamp(max=n - 1) + base).reshape(-1)  # (G*Np,)


def make_plan(qperm, kperm, n: int, bs: int, *, shared_qk: bool, dedup: bool, key_padding_mask, attn_mask,
              pool: BufferPool, needs_grad: bool):
    """All index maps and score masks of one forward from the sort orders ``(B, H, R, Np)``."""
    b, h, r, npad = qperm.shape
    t = b * h * r * npad // bs
    qrows = _rows(qperm, n)
    qinv = inverse(qperm)
    kinv = qinv if kperm is qperm else inverse(kperm)
    qback = _back(qinv, n)
    q_chunks = k_chunks = None
    if dedup and r > 1:
        pos_base = torch.arange(0, b * h * npad, npad, device=qperm.device).view(b, h, 1, 1)
        q_chunks = _chunk_ids((qperm + pos_base).reshape(-1), qinv, bs)  # (G*Np, R)
        kc = q_chunks if kperm is qperm else _chunk_ids((kperm + pos_base).reshape(-1), kinv, bs)
        k_chunks = windows(F.pad(kc, (0, 0, bs, bs)), bs, t)  # (T, 3bs, R) view
    kpos_w = _padded_windows(kperm.reshape(-1), bs, t) if attn_mask is not None else None  # (T, 3bs)
    masks = ScoreMasks(
        key_bias=_key_bias(kperm, key_padding_mask, n, bs, t),
        self_score=shared_qk,
        allowed=_gather_attn_mask(attn_mask, qperm, kpos_w, n, bs) if attn_mask is not None else None,
        q_chunks=q_chunks,
        k_chunks=k_chunks,
        shape=(b * h, r, npad // bs, bs),
    )
    ridx = torch.arange(r, device=qperm.device).view(1, 1, r, 1)
    return Plan(
        shape=(b, h, n, r), t=t, bs=bs, qrows=qrows,
        krows=F.pad(qrows if kperm is qperm else _rows(kperm, n), (bs, bs)),  # outer pads read row 0
        qback=qback, kback=(qback if kperm is qperm else _back(kinv, n)) + bs,  # keys: one pad chunk first
        wrows=torch.add(ridx, qrows.view_as(qperm), alpha=r).reshape(-1),  # (pos, round) of each slot
        qpad=(qperm >= n).reshape(-1), masks=masks, pool=pool, needs_grad=needs_grad,
    )


def relative_bias(rel_bias, qperm, kperm, bs: int, dtype: torch.dtype) -> torch.Tensor:
    """``rel_bias.gather`` at the true positions of the compared pairs: ``(T, bs, 3bs)``."""
    b, h = qperm.shape[:2]
    t = qperm.numel() // bs
    n = rel_bias.n  # padding slots (positions >= n) read position n-1: their scores are masked anyway
    kpos = _padded_windows(kperm.reshape(-1), bs, t).clamp_(max=n - 1).view(b, h, -1, 1, 3 * bs)  # (B, H, R*nc, 1, 3bs)
    qpos = qperm.clamp(max=n - 1).view(b, h, -1, bs, 1)  # (B, H, R*nc, bs, 1)
    return rel_bias.gather(qpos, kpos).to(dtype).reshape(t, bs, 3 * bs)


def chunked_attention(q, k, v, qperm, kperm, bs: int, *, shared_qk: bool, dedup: bool, dropout_p: float,
                      key_padding_mask=None, attn_mask=None, rel_bias=None, pool: BufferPool | None = None,
                      unit_q=None):
    """``q, k, v (B, H, N, D)``; ``qperm/kperm (B, H, R, Np)`` slot -> position (positions >= N pad
    the sequence to ``Np = nc * bs`` and sort last); ``unit_q``: ``normalize(q)`` if already computed.
    Returns ``(B, H, N, D)``."""
    if shared_qk and unit_q is None:
        unit_q = F.normalize(q, dim=-1)
    n, d = q.shape[2:]
    bias = relative_bias(rel_bias, qperm, kperm, bs, q.dtype) if rel_bias is not None else None
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, bias))
    with torch.no_grad():
        plan = make_plan(qperm, kperm, n, bs, shared_qk=shared_qk, dedup=dedup,
                         key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                         pool=pool if pool is not None else BufferPool(), needs_grad=needs_grad)
    keys = unit_q if shared_qk else k  # paper: shared-QK keys are the unit-normalised queries
    return LSHCore.apply(q, keys, v, bias, plan, dropout_p, k if shared_qk else None)
