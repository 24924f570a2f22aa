"""Dropout with a faster CPU mask.

``torch.nn.functional.dropout`` draws its CPU mask with ``bernoulli_``, one random draw per element.
CPU random numbers come from one serial mt19937 stream, so the cost is the number of draws: one int64
``random_`` draw gives 63 uniform bits, cut here into four 16-bit lanes, one keep decision each
(measurements: docs/BENCHMARKS.md and ``python benchmarks/dropout_ab.py``). The mask comes from the
same global generator, so seeding, checkpoint recompute and resume behave as before. Other devices
use PyTorch's dropout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Bernoulli(1 - p) mask from a quarter as many int64 draws, each split into four 16-bit lanes.

    int64 ``random_()`` is uniform on [0, 2^63): viewed as four int16 (little-endian), lanes 0-2 are
    uniform on [-2^15, 2^15) and lane 3 on [0, 2^15); each gets its own threshold, so p is honoured
    to 2^-15.
    """
    n = shape.numel()
    quads = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()  # (ceil(N/4),)
    lanes = quads.view(torch.int16).view(-1, 4)  # (ceil(N/4), 4): lanes 0-2 full range, lane 3 top
    full, top = round(p * 65536) - 32768, round(p * 32768)
    thr = torch.tensor([full, full, full, top], dtype=torch.int16, device=device)
    return (lanes >= thr).view(-1)[:n].view(shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    keep = keep_mask(x.shape, p, x.device)  # same shape as x
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` using :func:`dropout`."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
