"""Freed heap memory goes back to the OS between inference batches, so a long CPU evaluation's
resident set does not grow with the number of batches."""
from __future__ import annotations

import ctypes.util
import platform

import numpy as np
import pytest
import torch

import effx
import effx.eval.inference as inference
from effx.config import AttentionSpec, ModelConfig, PositionalSpec
from effx.memtrim import HeapTrimmer, release_free_memory
from effx.procmem import rss_mib

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is a glibc function")
def test_release_returns_the_free_holes_of_a_fragmented_heap():
    blocks = [bytearray(64 * 1024) for _ in range(4000)]  # 250 MiB of heap blocks, every page touched
    kept = blocks[::16]  # live blocks between the freed ones: the heap's top cannot shrink by itself
    del blocks
    before = rss_mib()
    assert release_free_memory() is True
    after = rss_mib()
    assert before - after > 100, (before, after)  # ~234 MiB are free holes inside the heap
    assert len(kept) == 250


def tiny_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=64,
                      attention=AttentionSpec("sdpa", {}), positional=PositionalSpec("learned"))
    return effx.build_model(cfg, {"type": "classification", "num_classes": 3})


def test_predict_checks_the_heap_after_every_cpu_batch_and_keeps_the_results(monkeypatch):
    model = tiny_classifier()
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(5, 300, size=int(n))) for n in rng.integers(3, 60, size=37)]
    plain = inference.predict_proba(model, ids, 3, batch_size=8, device="cpu")
    calls, made = [], []
    monkeypatch.setattr(inference, "HeapTrimmer", lambda slack_mib: made.append(slack_mib) or (lambda: calls.append(1)))
    again = inference.predict_proba(model, ids, 3, batch_size=8, device="cpu")
    assert made == [256] and len(calls) == 5  # one trimmer per call, checked after each of ceil(37 / 8) batches
    np.testing.assert_allclose(again.probs, plain.probs, rtol=0, atol=0)
    assert again.probs.shape == (37, 3) and np.allclose(again.probs.sum(1), 1.0)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is a glibc function")
def test_heap_trimmer_trims_only_after_the_resident_set_grew_by_its_slack():
    trimmer = HeapTrimmer(slack_mib=100)
    assert trimmer() is False and trimmer.trims == 0  # nothing grew yet
    blocks = [bytearray(64 * 1024) for _ in range(4000)]
    kept = blocks[::16]
    del blocks
    grown = rss_mib()
    assert trimmer() is True and trimmer.trims == 1
    assert grown - trimmer.floor_mib > 100  # the floor is the resident set after trimming
    assert trimmer() is False and trimmer.trims == 1  # no new growth: no second trim
    assert len(kept) == 250
