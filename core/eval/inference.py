"""Batched inference of a finetuned classifier: class probabilities for token-id sequences.

Sequences are processed in length-sorted batches of at most ``batch_size`` texts and a token budget
(:func:`effx.data.eval_batches`: less padding, bounded memory, the same results) and returned in
input order; the encoder computes on the real tokens only. Callers pick the autocast dtype with
:func:`effx.train.precision.inference_dtype` (bf16 for a bf16-trained model on bf16 hardware).
On CPU the allocator's free heap is handed back to the OS whenever the resident set has grown by
256 MiB (:mod:`effx.memtrim`), so it stays bounded over any number of batches. Throughput counts
texts and real (non-padding) tokens over the forward-pass wall time.
"""
from __future__ import annotations

import time
from typing import Sequence

import attrs
import numpy as np
import torch

from ..data import PadCollator, eval_batches
from ..memtrim import HeapTrimmer


@attrs.frozen
class Probabilities:
    probs: np.ndarray  # (n, C) float64, rows in input order
    tokens: int  # real tokens processed
    seconds: float  # forward-pass wall time
    dtype: str = "fp32"  # the autocast dtype the forward ran in

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    @property
    def texts_per_s(self) -> float:
        return len(self.probs) / self.seconds if self.seconds > 0 else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, ids: Sequence[Sequence[int]], num_classes: int, batch_size: int,
                  device: torch.device, dtype: torch.dtype | None = None) -> Probabilities:
    """Softmax probabilities ``(n, C)`` for every sequence in ``ids``; ``dtype``: autocast dtype (None: fp32)."""
    from ..train.precision import check_fp16, dtype_name

    device = torch.device(device)
    check_fp16(dtype_name(dtype), device.type, key="inference dtype")
    model.eval().to(device)
    collate = PadCollator()
    out = np.zeros((len(ids), num_classes), dtype=np.float64)
    tokens, seconds = 0, 0.0
    heap = HeapTrimmer(slack_mib=256) if device.type == "cpu" else None
    for rows in eval_batches([len(s) for s in ids], batch_size):
        batch = collate([{"input_ids": ids[i], "label": -1, "idx": int(i)} for i in rows])
        input_ids = batch["input_ids"].to(device)  # (B, N)
        mask = batch["attention_mask"].to(device)  # (B, N)
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(input_ids, mask)  # (B, C)
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()  # (B, C)
        _sync(device)
        seconds += time.perf_counter() - t0
        tokens += int(mask.sum())
        out[rows] = probs
        if heap is not None:
            heap()  # batch shapes vary: without it the resident set grows with every batch
    return Probabilities(out, tokens, seconds, dtype_name(dtype))
