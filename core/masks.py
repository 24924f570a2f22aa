"""The one boolean mask convention of effx.

**``True`` means "may attend / is a real token"; ``False`` means "masked out".** This matches
``torch.nn.functional.scaled_dot_product_attention``'s boolean ``attn_mask`` and the HF
``attention_mask`` (1 = token), and is the *opposite* of ``nn.MultiheadAttention``'s
``key_padding_mask``. Every attention plugin receives masks in this convention:

* ``key_padding_mask``: ``[B, N]`` - ``False`` at padded key positions.
* ``attn_mask``: ``[N, N]``, ``[B, N, N]`` or ``[B, H, N, N]`` - entry ``[.., i, j]`` is ``True``
  when query ``i`` may attend key ``j``.

A query whose keys are all masked gets a defined output: the zero vector (exact softmax kernels
would return NaN there). :func:`fully_masked_rows` finds such rows.
"""
from __future__ import annotations

import torch

from .errors import EffxError


def as_bool(mask: torch.Tensor | None, name: str) -> torch.Tensor | None:
    """Accept bool or 0/1 integer masks; anything else is an error naming the convention."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return mask
    if mask.dtype.is_floating_point:
        raise EffxError(
            f"{name} must be boolean (True = may attend) or 0/1 integers, got {mask.dtype}; "
            "additive float masks are not accepted"
        )
    return mask != 0


def attn_mask_4d(attn_mask: torch.Tensor, batch: int, heads: int, n: int) -> torch.Tensor:
    """View any accepted ``attn_mask`` shape as ``[B|1, H|1, N, N]`` (no copy)."""
    if attn_mask.shape[-2:] != (n, n):
        raise EffxError(f"attn_mask must end in ({n}, {n}) for a length-{n} input, got {tuple(attn_mask.shape)}")
    if attn_mask.dim() == 2:
        return attn_mask[None, None]  # (1, 1, N, N)
    if attn_mask.dim() == 3:
        if attn_mask.shape[0] not in (1, batch):
            raise EffxError(f"attn_mask [B, N, N] has B={attn_mask.shape[0]}, input has batch {batch}")
        return attn_mask[:, None]  # (B, 1, N, N)
    if attn_mask.dim() == 4:
        if attn_mask.shape[0] not in (1, batch) or attn_mask.shape[1] not in (1, heads):
            raise EffxError(f"attn_mask [B, H, N, N] has shape {tuple(attn_mask.shape)}, expected ({batch}, {heads}, {n}, {n})")
        return attn_mask
    raise EffxError(f"attn_mask must be [N, N], [B, N, N] or [B, H, N, N], got {attn_mask.dim()} dims")


def combine(
    key_padding_mask: torch.Tensor | None, attn_mask: torch.Tensor | None, batch: int, heads: int, n: int
) -> torch.Tensor | None:
    """Merge both masks (bool or 0/1 integers) into one ``[B|1, H|1, N, N]`` boolean (quadratic; for
    exact attention)."""
    key_padding_mask = as_bool(key_padding_mask, "key_padding_mask")
    attn_mask = as_bool(attn_mask, "attn_mask")
    out = None
    if attn_mask is not None:
        out = attn_mask_4d(attn_mask, batch, heads, n)
    if key_padding_mask is not None:
        kpm = key_padding_mask[:, None, None, :]  # (B, 1, 1, N)
        out = kpm if out is None else out & kpm
    return out


def fully_masked_rows(mask: torch.Tensor) -> torch.Tensor:
    """``[..., N, N]`` bool -> ``[..., N, 1]`` True where a query may attend no key."""
    return ~mask.any(dim=-1, keepdim=True)
