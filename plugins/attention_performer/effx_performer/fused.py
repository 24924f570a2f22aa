"""The FAVOR+ linear-attention core as one autograd Function with a hand-written backward.

Same math as composing :func:`effx_performer.features.positive_features` with
``phi(Q) (phi(K)^T [V, 1])`` under autograd (the tests check values and gradients against that),
but with fewer passes over the two ``[B, H, N, M]`` feature tensors and no extra copies of them:

* forward: each feature map is ONE matmul followed by in-place ``max``-subtract and ``exp`` on the
  same buffer (no separate logits tensor); the two features are the only O(N M) tensors saved;
* backward: ``d exp(l) = exp(l) * d phi`` is applied in place to the incoming feature gradient,
  which is then contracted straight back to the (small) matmul inputs; the query-side and
  key-side feature gradients share ONE buffer (on CPU a fresh 64 MiB tensor costs more in page
  faults than the matmul that fills it). The stabilising maxima
  cancel in the attention ratio, so they carry no gradient.

Memory: saved between forward and backward ``2 x [B, H, N, M]`` fp32; peak in backward one more
``[B, H, N, M]`` buffer. Everything else is O(N (Dh + M)) per head or smaller.
"""
from __future__ import annotations

import torch

from .features import DEN_FLOOR, KEY_DIMS, QUERY_DIMS, positive_features_


class FavorLinear(torch.autograd.Function):
    """``(xq, wq, yk, wk, v_ext) -> ratio(phi(Q) (phi(K)^T v_ext))``; ``xq, yk [B, H, N, a]``,
    ``wq, wk [M, a] | [B, H, M, a]`` (no gradient), ``v_ext [B, H, N, Dh+1]`` (last column ones)
    -> ``[B, H, N, Dh]``. The normalisation follows :func:`effx_performer.favor.ratio`."""

    @staticmethod
    def forward(ctx, xq, wq, yk, wk, v_ext):
        qp = positive_features_(xq, wq, QUERY_DIMS)  # (B, H, N, M)
        kp = positive_features_(yk, wk, KEY_DIMS)  # (B, H, N, M)
        kv = (v_ext.transpose(-2, -1) @ kp).transpose(-2, -1)  # (B, H, M, Dh+1)
        out_ext = qp @ kv  # (B, H, N, Dh+1): numerator | normaliser
        den = out_ext[..., -1:]  # (B, H, N, 1)
        inv = torch.where(den > DEN_FLOOR, den, torch.inf).reciprocal_()  # 0 where no key is seen
        out = out_ext[..., :-1].mul_(inv)  # (B, H, N, Dh), in place, a view of out_ext
        ctx.save_for_backward(qp, kp, kv, wq, wk, v_ext, out, inv)
        return out

    @staticmethod
    def backward(ctx, grad):  # grad (B, H, N, Dh)
        qp, kp, kv, wq, wk, v_ext, out, inv = ctx.saved_tensors
        g_den = (grad * out).sum(-1, keepdim=True).neg_()  # (B, H, N, 1): d out / d normaliser * den
        grad = torch.cat([grad, g_den], dim=-1).mul_(inv)  # (B, H, N, Dh+1): d loss / d out_ext
        g_kv = qp.transpose(-2, -1) @ grad  # (B, H, M, Dh+1)
        g_feat = grad @ kv.transpose(-2, -1)  # (B, H, N, M): d out / d phi(q)
        g_xq = g_feat.mul_(qp) @ wq  # (B, H, N, a): through exp, in place
        torch.matmul(v_ext, g_kv.transpose(-2, -1), out=g_feat)  # (B, H, N, M): d out / d phi(k), same buffer
        g_v = kp @ g_kv  # (B, H, N, E)
        g_yk = g_feat.mul_(kp) @ wk  # (B, H, N, a)
        return g_xq, None, g_yk, None, g_v
