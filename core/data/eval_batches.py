"""Evaluation batches: length-sorted, at most ``batch_size`` texts and at most a token budget each.

Sorting by length keeps padding low and leaves every score unchanged. The token budget keeps the
memory of one batch at what ``batch_size`` texts of 512 tokens need, whatever ``data.max_length`` is:
long inputs are evaluated in proportionally smaller batches (64 texts at 512 tokens, 16 at 2,048, 4 at
8,192) instead of a 64 x 8,192 batch that the training batch size never had to hold.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

ROW_TOKENS = 512  # the token budget of a batch is batch_size x ROW_TOKENS


def eval_batches(lengths: Sequence[int], batch_size: int, max_tokens: Optional[int] = None) -> list[list[int]]:
    """Indices of ``lengths`` in length-sorted batches of <= ``batch_size`` rows and <= ``max_tokens``
    (default ``batch_size * ROW_TOKENS``) padded tokens; a text longer than the budget is a batch of its own."""
    budget = batch_size * ROW_TOKENS if max_tokens is None else max_tokens
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    out: list[list[int]] = []
    batch: list[int] = []
    for i in order.tolist():
        longest = max(int(lengths[i]), 1)  # ascending order: the newest row is the longest
        if batch and (len(batch) == batch_size or (len(batch) + 1) * longest > budget):
            out.append(batch)
            batch = []
        batch.append(i)
    if batch:
        out.append(batch)
    return out
