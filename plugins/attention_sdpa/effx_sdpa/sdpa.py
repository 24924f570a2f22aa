"""Exact scaled-dot-product attention (Vaswani et al., 2017), O(N^2) time and memory.

Two code paths, chosen by ``impl``:

* ``explicit`` - from scratch: ``softmax(Q K^T / sqrt(Dh) + bias, masked) V`` with a max-subtracted
  softmax and dropout on the probabilities. Materialises the ``[B, H, N, N]`` score matrix.
* ``fused`` - ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
  kernels where the backend has them).
* ``auto`` (the default) - ``explicit`` on CPU for bf16/fp16 inputs of at most
  ``explicit_max_len`` tokens whose score matrix is small (``EXPLICIT_MAX_SCORES`` values), ``fused``
  otherwise. torch's fused CPU kernel is several times slower than two matmuls and a softmax for
  short half-precision sequences, and faster for fp32 and long ones
  (``python benchmarks/sdpa_path_ab.py``, docs/bench/cpu-sdpa-path.md).

Both give the zero vector for a query whose keys are all masked (see :func:`effx.fully_masked_rows`).
"""
from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
import torch.nn.functional as F

import effx
from effx import combine, fully_masked_rows


# the auto path's memory bound for the explicit path: B*H*N*N score values (128 MiB in bf16)
EXPLICIT_MAX_SCORES = 1 << 26


@attrs.frozen
class SDPAConfig:
    impl: Literal["auto", "fused", "explicit"] = "auto"
    explicit_max_len: int = 512  # auto: longest sequence given to the explicit path


def auto_path(q: torch.Tensor, max_len: int) -> str:
    """The path ``impl: auto`` takes for ``q [B, H, N, Dh]``: ``explicit`` or ``fused``."""
    b, h, n, _ = q.shape
    half = q.dtype in (torch.bfloat16, torch.float16)
    small = n <= max_len and b * h * n * n <= EXPLICIT_MAX_SCORES
    return "explicit" if q.device.type == "cpu" and half and small else "fused"


def _mask_and_dead(kpm, attn_mask, b, h, n):
    """Merged bool mask ``[B|1, H|1, N, N]`` with fully-masked rows opened up, and those rows."""
    mask = combine(kpm, attn_mask, b, h, n)
    if mask is None:
        return None, None
    dead = fully_masked_rows(mask)  # (B|1, H|1, N|1, 1)
    return mask | dead, dead  # opened rows keep gradients finite; their output is zeroed below


def explicit_attention(q, k, v, mask, bias, dropout_p: float, training: bool) -> torch.Tensor:
    """``q, k, v [B, H, N, Dh]`` -> ``[B, H, N, Dh]``; mask bool (True = attend), bias additive.

    Written like the eager attention of BERT implementations, with the passes over the ``N x N``
    scores kept few: the ``1/sqrt(Dh)`` scale goes on ``q`` (N*Dh, not N^2, multiplies), bias and
    mask are applied in place on the fresh score matrix (matmul's backward needs only its inputs),
    and ``torch.softmax`` (max-subtracted, one kernel, saves only its output) normalises it.
    """
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # (B, H, N, N)
    if bias is not None:
        scores.add_(bias)  # (H|B, H, N, N) broadcast
    if mask is not None:
        scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)  # (B, H, N, N)
    if dropout_p > 0 and training:
        probs = F.dropout(probs, dropout_p)
    return probs @ v  # (B, H, N, Dh)


def _flash_kernel():
    """Force the flash kernel of ``F.scaled_dot_product_attention`` (CUDA only)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


class SDPAttention(effx.Attention):
    name = "sdpa"
    default_rank = 0  # the attention of a config that names none
    Config = SDPAConfig
    capabilities = effx.AttentionCapabilities()
    exact = True
    family = "SDPA"
    impl_variants = (effx.ImplVariant("fused", {"impl": "fused"}), effx.ImplVariant("explicit", {"impl": "explicit"}),
                     effx.ImplVariant("flash", {"impl": "fused"}, devices=("cuda",), kernel=_flash_kernel))

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        b, h, n, _ = q.shape
        mask, dead = _mask_and_dead(key_padding_mask, attn_mask, b, h, n)
        bias = rel_bias.dense().to(q.dtype) if rel_bias is not None else None  # (H, N, N)
        p = self.ctx.dropout if self.training else 0.0
        impl = auto_path(q, self.config.explicit_max_len) if self.config.impl == "auto" else self.config.impl
        if impl == "explicit":
            out = explicit_attention(q, k, v, mask, bias, p, self.training)
        else:
            if bias is not None and mask is not None:
                bias = bias.masked_fill(~mask, float("-inf"))  # (B|1, H, N, N) additive
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias if bias is not None else mask, dropout_p=p)
        if dead is not None:
            out = out.masked_fill(dead, 0.0)
        return out
