"""Reformer LSH attention (Kitaev, Kaiser & Levskaya, "Reformer: The Efficient Transformer", ICLR 2020).

Angular locality-sensitive hashing (Andoni et al., 2015) by random rotations: a unit vector ``x`` is
hashed in round ``r`` to ``argmax([x R_r, -x R_r])`` with ``R_r`` a random ``[Dh, n_buckets/2]``
Gaussian matrix, so vectors at a small angle share a bucket with high probability. Each round sorts
the tokens by ``(bucket, position)`` and attends in chunks (see :mod:`effx_reformer.chunked`).

* ``shared_qk`` (paper): keys are the unit-normalised queries, one sort serves queries and keys, and a
  token attends to itself only when no other key is available. ``shared_qk: false`` hashes queries
  and keys separately with the same rotations and sorts each; the given ``k`` is then used.
* Rotations come from a generator seeded from the run seed (``AttentionContext.seed``). With
  ``rotations: redraw`` (paper) training draws new ones every forward; ``fixed`` keeps the ones
  drawn at construction (a buffer, saved in checkpoints). Evaluation always uses the fixed ones,
  so it is deterministic.
* Any length: the sequence is padded internally to a multiple of the chunk and the padding stripped.

``torch.compile``: the attention runs eagerly inside a compiled model (``torch.compiler.disable``
on ``forward``; the rest of the model compiles). Its generator draws, reused work buffers and
in-place index bookkeeping do not trace: with torch 2.13, Dynamo failed on the frozen attrs
records, and with those made mutable Inductor failed with an internal ``KeyError`` after Dynamo's
warning that it cannot trace ``Tensor.as_strided``.

Cost per layer: ``O(N log N)`` for the sort, ``O(N * n_hashes * 3 * bucket_size)`` time and memory
for the attention; no ``N x N`` tensor.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import attrs
import torch
import torch.nn.functional as F

import effx
from effx import BoundsError, as_bool, at_least, attn_mask_4d

from .chunked import BufferPool, chunked_attention, scratch
from .peer import REFORMER_PYTORCH
from .reference import SHARED_QK_REFERENCE, shared_qk_reference

_positive = at_least(1)


def _even_or_one(inst, attr, value) -> None:
    if value is not None and (value < 1 or (value > 1 and value % 2)):
        raise BoundsError(attr.name, f"must be 1 or an even number >= 2 (angular LSH), got {value}")


@attrs.frozen
class ReformerConfig:
    bucket_size: int = attrs.field(default=64, validator=_positive)  # chunk size; average bucket size
    n_hashes: int = attrs.field(default=4, validator=_positive)  # hash rounds
    n_buckets: Optional[int] = attrs.field(default=None, validator=_even_or_one)  # default: ~max_seq_len / bucket_size
    shared_qk: bool = True
    rotations: Literal["redraw", "fixed"] = "redraw"
    dedup: bool = True  # count a (query, key) pair compared in several rounds once


def _in_backward() -> bool:
    """True while the autograd engine runs (e.g. a gradient-checkpoint recompute)."""
    graph_task_id = getattr(torch._C, "_current_graph_task_id", None)
    return graph_task_id is not None and graph_task_id() != -1


class ReformerLSH(effx.Attention):
    name = "reformer_lsh"
    Config = ReformerConfig
    capabilities = effx.AttentionCapabilities(key_padding_mask=True, attn_mask=True,
                                              positional=frozenset(effx.PositionMode))
    exact = False
    family = "Reformer"
    # the product's cost rule: time/epoch <= exact - 15 % or peak memory <= exact - 25 %
    cost_thresholds = {"min_time_reduction": 0.15, "min_memory_reduction": 0.25}
    bench_peers = (REFORMER_PYTORCH,)
    break_even_target = 4096  # bench target: faster than exact attention from N = 4096
    content_routed = True  # which keys a query compares depends on the keys' content (their buckets)
    rel_bias_tolerance = 1.0  # only compared pairs get a bias; the suite checks per-head fidelity, not value

    @classmethod
    def gradcheck_configs(cls) -> tuple:
        c = cls.Config
        return (c(), c(shared_qk=False), c(rotations="fixed", dedup=False, n_hashes=1))

    def exact_reference(self, q, k, v, rows):
        """With ``shared_qk`` the exact form approximated is shared-QK attention: keys are the
        unit-normalised queries and a token attends itself only when nothing else is available
        (self score -5e4, as in reformer-pytorch). ``q, k, v [B, H, N, Dh]``, ``rows [S]``."""
        if not self.config.shared_qk:
            return super().exact_reference(q, k, v, rows)
        return shared_qk_reference(q, v, rows), SHARED_QK_REFERENCE

    def __init__(self, config, ctx) -> None:
        super().__init__(config, ctx)
        self._gen = torch.Generator().manual_seed(ctx.seed)
        self.register_buffer("rotations", self._draw(), persistent=True)  # (H, Dh, R, P)
        self._last: torch.Tensor | None = None  # rotations of the latest training forward
        self._pool = BufferPool()  # big buffers recycled between steps

    # --- hashing: subclasses replace these two -------------------------------------------------
    def _projections(self, n_max: int) -> int:
        """Columns drawn per round: half the largest bucket count used up to ``n_max`` tokens."""
        nb = self.config.n_buckets or self._n_buckets(n_max)
        return max(1, nb // 2)

    @torch.no_grad()
    def _sort(self, x: torch.Tensor, rotations: torch.Tensor, npad: int, bs: int, pad) -> torch.Tensor:
        """Vectors ``x (B, H, N, Dh)`` -> slot order ``(B, H, R, Np)`` sorted by (bucket, position).

        The angular hash ignores ``|x|``, so ``x`` need not be normalised. ``pad (B, N)`` (True =
        padding) or None: padded tokens sort last whatever their content.
        """
        nb = self.n_buckets()
        b, h, n = x.shape[:3]
        work = scratch(b * h * rotations.shape[2] * (nb // 2) * n, x.dtype, x.device) if nb > 1 else None
        buckets = angular_buckets(x, rotations, nb, out=work)  # (B, H, R, N)
        if pad is not None:  # (B, N) or (B|1, H|1, N) True = padding
            pad = pad[:, None, :] if pad.dim() == 2 else pad
            buckets = buckets.masked_fill(pad[:, :, None, :], nb)
        return sort_by_bucket(buckets, nb, npad)

    def n_buckets(self) -> int:
        """The bucket count: set, or ~``max_seq_len / bucket_size`` - never the batch's padded length,
        so a sequence hashes the same whatever it is batched with."""
        return self.config.n_buckets or self._n_buckets(self.ctx.max_seq_len)

    # ------------------------------------------------------------------------------------------
    def _n_buckets(self, n: int) -> int:
        nc = math.ceil(n / self.config.bucket_size)
        return nc + nc % 2 if nc > 1 else 1

    def _draw(self) -> torch.Tensor:
        c = self.config
        shape = (self.ctx.n_heads, self.ctx.head_dim, c.n_hashes, self._projections(self.ctx.max_seq_len))
        return torch.randn(shape, generator=self._gen)

    def _current_rotations(self) -> torch.Tensor:
        if self.training and self.config.rotations == "redraw" and torch.is_grad_enabled():
            if not _in_backward():  # a checkpoint recompute must reuse the rotations of its forward
                self._last = self._draw().to(self.rotations.device)
            if self._last is not None:
                return self._last
        return self.rotations

    @torch.compiler.disable  # see the module docstring: runs eagerly inside a compiled model
    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        dtype = q.dtype
        if dtype in (torch.float16, torch.bfloat16):  # hashing and softmax in fp32, cast back at the end
            q, k, v = q.float(), k.float(), v.float()
        with torch.autocast(q.device.type, enabled=False):
            out = self._attend(q, k, v, as_bool(key_padding_mask, "key_padding_mask"),
                               as_bool(attn_mask, "attn_mask"), rel_bias)
        return out.to(dtype)

    def _attend(self, q, k, v, kpm, attn_mask, rel_bias):
        n = q.shape[2]
        if n > self.ctx.max_seq_len:  # the rotations were drawn for at most max_seq_len tokens
            raise effx.SequenceTooLongError(
                f"{self.name}: input length {n} exceeds max_seq_len={self.ctx.max_seq_len}; raise "
                "model.max_seq_len or truncate the input")
        bs = min(self.config.bucket_size, n)
        npad = math.ceil(n / bs) * bs
        rot = self._current_rotations()
        pad = (~kpm)[:, None, :] if kpm is not None else None  # (B, 1, N): never moves real tokens between chunks
        shared = self.config.shared_qk
        unit_q = F.normalize(q, dim=-1) if shared else None  # the keys under shared-QK
        with torch.no_grad():
            qperm = self._sort(unit_q if shared else q, rot, npad, bs, pad)
            kperm = qperm if shared else self._sort(k, rot, npad, bs, hidden_keys(pad, attn_mask, q.shape))
        p = self.ctx.dropout if self.training else 0.0
        return chunked_attention(q, k, v, qperm, kperm, bs, shared_qk=shared,
                                 dedup=self.config.dedup, dropout_p=p, key_padding_mask=kpm,
                                 attn_mask=attn_mask, rel_bias=rel_bias, pool=self._pool, unit_q=unit_q)


def hidden_keys(pad: torch.Tensor | None, attn_mask: torch.Tensor | None, shape) -> torch.Tensor | None:
    """Keys no query may see - padding, and columns ``attn_mask`` hides from every query - as
    ``(B|1, H|1, N)`` True; they are sorted last, so they take no chunk slot from a visible key."""
    if attn_mask is None:
        return pad
    b, h, n = shape[:3]
    unseen = ~attn_mask_4d(attn_mask, b, h, n).any(dim=-2)  # (B|1, H|1, N)
    return unseen if pad is None else unseen | pad


def angular_buckets(x: torch.Tensor, rotations: torch.Tensor, n_buckets: int, out=None) -> torch.Tensor:
    """``x (B, H, N, Dh)``, ``rotations (H, Dh, R, >= nb/2)`` -> buckets ``(B, H, R, N)`` in ``[0, nb)``.

    ``argmax([xR, -xR])`` without concatenating: the larger of ``max(xR)`` and ``-min(xR)`` decides.
    ``out``: optional flat buffer for the projections ``(B, H, R*nb/2, N)``.
    """
    b, h, n, d = x.shape
    r = rotations.shape[2]
    if n_buckets == 1:
        return torch.zeros(b, h, r, n, dtype=torch.long, device=x.device)
    half = n_buckets // 2
    rot = rotations[..., :half].permute(0, 2, 3, 1).reshape(h, r * half, d).to(x.dtype)  # (H, R*half, Dh)
    shape = (b, h, r * half, n)
    out = out.view(shape) if out is not None else None
    proj = torch.matmul(rot, x.transpose(-1, -2), out=out).view(b, h, r, half, n)  # reduce a non-inner dim
    hi, ihi = proj.max(3)
    lo, ilo = proj.min(3)
    return torch.where(hi >= -lo, ihi, ilo + half)  # (B, H, R, N)


def sort_by_bucket(buckets: torch.Tensor, n_buckets: int, npad: int) -> torch.Tensor:
    """Sort by (bucket, position); positions ``N..Np-1`` pad the sequence and get a bucket past the last."""
    n = buckets.shape[-1]
    key = F.pad(buckets, (0, npad - n), value=n_buckets).mul_(npad)  # (B, H, R, Np)
    key += torch.arange(npad, device=buckets.device)
    return key.argsort(-1)  # (B, H, R, Np) slot -> position
