"""Performer attention, FAVOR+ (Choromanski et al., "Rethinking Attention with Performers", ICLR 2021).

Softmax attention ``softmax(Q K^T / sqrt(d)) V`` is replaced by ``phi(Q) (phi(K)^T [V, 1])``
with positive orthogonal random features ``phi`` (:mod:`effx_performer.features`): O(N M Dh)
time and O(N M) memory for ``M = nb_features``. Output = numerator / normaliser, both from one
contraction against ``[V, 1]``.

* ``key_padding_mask``: exact in linear time - a padded key's ``[v, 1]`` row is zeroed, so it
  enters neither numerator nor normaliser (its feature weight is also driven to 0, or to the fused
  core's floor ``e^-60``); it is also excluded from the key stabiliser (max).
* dense ``attn_mask``: honoured exactly by a quadratic fallback that builds the kernel matrix
  ``phi(Q) phi(K)^T`` ``[B, H, N, N]`` and zeroes masked entries; a one-time warning states the cost.
* relative-position bias ``[H, 2N-1]``: the kernel is multiplied by ``exp(b(i - j))`` and evaluated
  in O(N log N) by FFT (:mod:`effx_performer.toeplitz`). RoPE is applied to q, k by the core.
* features are redrawn every ``redraw_interval`` training forwards (0 = never) from a generator
  seeded by ``(ctx.seed, draw index)``; the projection and the step counter are buffers, so a
  checkpoint resumes exactly. A recompute under gradient checkpointing does not count as a step.
* ``feature_eps`` (default 1.0) is an absolute floor added to every textbook feature
  ``exp(w . x - |x|^2/2)`` (mean 1); the stabilisers are divided out of ``f + eps`` as a whole, so
  they cancel exactly (:mod:`effx_performer.features`) and the gradient is exact for every eps.
* everything runs in fp32 (autocast disabled inside); both feature maps are bounded (by
  2), so fp16/bf16 inputs with large norms give no inf/NaN.
* attention dropout: there is no attention matrix to drop from, so a nonzero
  ``model.attention_dropout`` is refused with a one-line error.
"""
from __future__ import annotations

import warnings
from typing import Literal

import attrs
import torch

import effx
from effx import ConfigError, as_bool, at_least, attn_mask_4d

from .features import (
    DEFAULT_FEATURE_EPS,
    DEN_FLOOR,
    KEY_DIMS,
    MASKED_LOGIT,
    QUERY_DIMS,
    key_operands,
    orthogonal_gaussian,
    stabilised_features,
    query_operands,
    relu_features,
    row_term,
    values_with_ones,
)
from .fused import FavorLinear
from .peer import PERFORMER_PYTORCH
from .toeplitz import toeplitz_attention

_WARNED: set[str] = set()  # attention types that already warned about the dense-mask fallback


@attrs.frozen
class PerformerConfig:
    nb_features: int = attrs.field(default=256, validator=at_least(1))
    redraw_interval: int = attrs.field(default=1000, validator=at_least(0))
    kernel: Literal["softmax", "relu"] = "softmax"
    # absolute floor added to every textbook feature exp(w.x - |x|^2/2) (mean 1), see features.py;
    # 0 = the unbiased estimator, whose variance explodes for |q|, |k| ~ sqrt(Dh)
    feature_eps: float = attrs.field(default=DEFAULT_FEATURE_EPS, validator=at_least(0.0))


def linear_attention(qp: torch.Tensor, kp: torch.Tensor, v_ext: torch.Tensor) -> torch.Tensor:
    """``qp, kp [B, H, N, M]``, ``v_ext [B, H, N, E]`` -> ``[B, H, N, E]`` in O(N M E)."""
    kv = (v_ext.transpose(-2, -1) @ kp).transpose(-2, -1)  # (B, H, M, E): the only reduction over keys
    return qp @ kv  # (B, H, N, E); written so the gradient of kp comes out contiguous (no copy)


def dense_kernel_attention(qp, kp, ck, v_ext, mask: torch.Tensor, table: torch.Tensor | None) -> torch.Tensor:
    """Quadratic fallback: ``(phi(Q) phi(K)^T * exp(bias) * mask) [V, 1]`` -> ``[B, H, N, E]``.

    ``kp [B, H, N, M]`` are key features stabilised per key by ``ck [B, H, N, 1]``; entry (i, j) is
    rescaled by ``exp(c_j - max_{j' visible to i} c_j')``, a per-query constant that cancels in the
    ratio, so a key hidden from query i - whatever its norm - never sets query i's scale.
    """
    a = qp @ kp.transpose(-2, -1)  # (B, H, N, N) - the requested quadratic cost
    if ck is None:  # ReLU features: no stabiliser
        a = a.masked_fill(~mask, 0.0)
    else:
        scale = torch.where(mask, ck.transpose(-2, -1), -torch.inf)  # (B, H, N, N): c_j where visible
        row_max = scale.amax(dim=-1, keepdim=True).clamp_min(-1e30)  # (B, H, N, 1); finite for hidden rows
        a = a * torch.exp(scale - row_max)  # 0 where masked
    if table is not None:
        n = qp.shape[2]
        bias = effx.RelativeBias(table, n).dense()  # (H, N, N)
        a = a * torch.exp(bias - table.amax(dim=-1)[:, None, None])
    return a @ v_ext  # (B, H, N, E)


def ratio(out_ext: torch.Tensor) -> torch.Tensor:
    """``[B, H, N, Dh+1]`` numerator|normaliser -> ``[B, H, N, Dh]``.

    A row whose normaliser is 0 (no key: padding or mask) or has underflowed below ``DEN_FLOOR``
    (feature supports of query and keys do not overlap in fp32, e.g. huge-norm inputs) outputs 0
    with zero gradient, like a fully masked row - never ``x / 0`` or a 1e38 gradient.
    """
    num, den = out_ext[..., :-1], out_ext[..., -1:]  # (B, H, N, Dh), (B, H, N, 1)
    ok = den > DEN_FLOOR
    return torch.where(ok, num / torch.where(ok, den, 1.0), 0.0)


def _in_backward() -> bool:
    """True while autograd runs a backward pass (e.g. a gradient-checkpointing recompute)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1


def _draw_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index * 7_919 + 12_345) % (2**63 - 1)


class PerformerAttention(effx.Attention):
    name = "performer_favor"
    Config = PerformerConfig
    capabilities = effx.AttentionCapabilities()
    exact = False
    family = "Performer"
    # the product's cost rule: time/epoch <= exact - 20 % or peak memory <= exact - 30 %
    cost_thresholds = {"min_time_reduction": 0.20, "min_memory_reduction": 0.30}
    bench_peers = (PERFORMER_PYTORCH,)
    break_even_target = 1024  # bench target: faster than exact attention from N = 1024
    # Bound on ||d_out - d_exact|| / ||d_exact||, d = (output with a relative bias) - (output without),
    # for q, k of std <= 0.5 (logit std <= 0.25) with the default config; 0.17-0.18 measured at head
    # size 16, N = 32, per-head N(0, 1) bias tables. Wider logit spreads exceed it (0.54-0.63 at std 1).
    rel_bias_tolerance: float = 0.35

    def __init__(self, config: PerformerConfig, ctx: effx.AttentionContext) -> None:
        super().__init__(config, ctx)
        if ctx.dropout:
            raise ConfigError(f"model.attention_dropout: {self.name} has no attention matrix to drop from; "
                              f"set model.attention_dropout: 0 (got {ctx.dropout})")
        self.register_buffer("projection", self.draw(0))  # (M, Dh)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training forwards seen

    def draw(self, index: int) -> torch.Tensor:
        """The ``index``-th projection of this layer: a function of ``(ctx.seed, index)`` only."""
        gen = torch.Generator().manual_seed(_draw_seed(self.ctx.seed, index))
        return orthogonal_gaussian(self.config.nb_features, self.ctx.head_dim, gen)  # (M, Dh)

    @torch.no_grad()
    def advance(self) -> None:
        """Count a training forward; redraw first when ``step`` is a multiple of the interval."""
        interval = self.config.redraw_interval
        if not self.training or interval == 0 or _in_backward():
            return
        step = int(self.step)
        if step > 0 and step % interval == 0:  # replaced, not copied into: saved tensors stay valid
            self.projection = self.draw(step // interval).to(self.projection.device)
        self.step += 1

    def feature_offset(self, q: torch.Tensor, k: torch.Tensor, w: torch.Tensor, kpm, dense: bool):
        """Per-(B, H) input scale and per-feature logit offset; FAVOR+ uses neither."""
        return None, None

    def operands(self, q, k, kpm, dense: bool, fold_padding: bool = True):
        """fp32 ``q, k [B, H, N, Dh]`` -> matmul operands ``(x', w')`` of the query and key logits
        (the ``-|x|^2/2`` row terms are ``row_term(., Dh^-1/2)``). ``fold_padding``: padded keys get
        logit -1e30 through an extra matmul column; otherwise the caller adds it to the row term."""
        scale = q.shape[-1] ** -0.25  # exp(x . y) = exp(q . k / sqrt(Dh)) for x, y = q, k * scale
        w = self.projection.to(q.dtype) * scale  # (M, Dh): the input scaling lives in w, q and k are not copied
        coef, offset = self.feature_offset(q, k, w, kpm, dense)
        if coef is not None:  # (B, H, 1): B multiplies w . x only, not the -|y|^2/2 term
            w = w * coef[..., None]  # (B, H, M, Dh)
        return query_operands(q, w, offset), key_operands(k, w, kpm if fold_padding else None, offset)

    def features(self, q, k, kpm, dense: bool):
        """fp32 ``q, k [B, H, N, Dh]`` -> ``phi(q), phi(k) [B, H, N, M]`` and the per-key stabiliser
        ``[B, H, N, 1]`` (dense path) or None (autograd path)."""
        if self.config.kernel == "relu":
            w = self.projection.to(q.dtype) * q.shape[-1] ** -0.25  # (M, Dh)
            return relu_features(q, w), relu_features(k, w), None
        (xq, wq), (yk, wk) = self.operands(q, k, kpm, dense)
        eps, sq_scale = self.config.feature_eps, q.shape[-1] ** -0.5
        qp, _ = stabilised_features(xq, wq, row_term(q, sq_scale), QUERY_DIMS, eps)
        kp, ck = stabilised_features(yk, wk, row_term(k, sq_scale), QUERY_DIMS if dense else KEY_DIMS, eps)
        return qp, kp, (ck if dense else None)

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        self.advance()
        kpm, out_dtype = as_bool(key_padding_mask, "key_padding_mask"), v.dtype
        attn_mask = as_bool(attn_mask, "attn_mask")
        if attn_mask is not None and bool(attn_mask.all()):
            attn_mask = None  # a mask that hides nothing is no mask: same estimator, linear cost
        with torch.autocast(q.device.type, enabled=False):
            ct = torch.float64 if q.dtype == torch.float64 else torch.float32  # fp32, or float64 for checks
            q, k, v = q.to(ct), k.to(ct), v.to(ct)
            v_ext = values_with_ones(v, kpm)  # (B, H, N, Dh+1)
            if attn_mask is None and rel_bias is None and self.config.kernel == "softmax":
                (xq, wq), (yk, wk) = self.operands(q, k, kpm, dense=False, fold_padding=False)
                eps, sq_scale = self.config.feature_eps, q.shape[-1] ** -0.5
                pad = None if kpm is None else k.new_zeros(kpm.shape).masked_fill(~kpm, MASKED_LOGIT)[:, None]
                out = FavorLinear.apply(xq, wq, yk, wk, v_ext, eps, sq_scale, q.shape[-1], pad)  # the fast path
            else:
                out = ratio(self.general(q, k, v_ext, kpm, attn_mask, rel_bias))  # (B, H, N, Dh)
        return out.to(out_dtype)

    def general(self, q, k, v_ext, kpm, attn_mask, rel_bias) -> torch.Tensor:
        """Autograd path for the dense-mask fallback, the FFT relative bias and the ReLU kernel."""
        qp, kp, ck = self.features(q, k, kpm, dense=attn_mask is not None)  # (B, H, N, M)
        table = rel_bias.table.to(q.dtype) if rel_bias is not None else None  # (H, 2N-1)
        if attn_mask is not None:
            self._warn_quadratic(q.shape)
            mask = attn_mask_4d(attn_mask, q.shape[0], q.shape[1], q.shape[2])  # (B|1, H|1, N, N)
            if kpm is not None:
                mask = mask & kpm[:, None, None, :]  # (B, H|1, N, N)
            return dense_kernel_attention(qp, kp, ck, v_ext, mask, table)
        if table is not None:
            return toeplitz_attention(qp, kp, v_ext, table)
        return linear_attention(qp, kp, v_ext)

    def _warn_quadratic(self, shape) -> None:
        if self.name in _WARNED:
            return
        _WARNED.add(self.name)
        b, h, n, _ = shape
        mib = b * h * n * n * 4 / 2**20
        warnings.warn(
            f"{self.name}: a dense attn_mask is honoured by a quadratic fallback that builds the "
            f"[B, H, N, N] kernel matrix ({b}x{h}x{n}x{n} fp32 = {mib:.3g} MiB per layer, O(N^2) time "
            f"and memory instead of O(N)); pass only key_padding_mask to keep linear cost",
            RuntimeWarning,
            stacklevel=3,
        )
