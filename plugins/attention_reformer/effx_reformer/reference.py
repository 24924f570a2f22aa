"""The exact attention a shared-QK Reformer approximates, for fidelity measurements.

With shared queries and keys the keys are the unit-normalised queries, and a token attends itself
only when nothing else is available: its self score is -5e4, as in reformer-pytorch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SHARED_QK_REFERENCE = "shared-QK softmax(Q norm(Q)^T)V, no self"
SELF_SCORE = -5e4


def shared_qk_reference(q: torch.Tensor, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``q, v [B, H, N, Dh]``, query ``rows [S]`` -> exact shared-QK attention ``[B, H, S, Dh]``."""
    qs = q[:, :, rows]  # (B, H, S, Dh)
    scores = qs @ F.normalize(q, dim=-1).transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, S, N)
    scores[..., torch.arange(len(rows), device=scores.device), rows] = SELF_SCORE
    return scores.softmax(-1) @ v  # (B, H, S, Dh)
