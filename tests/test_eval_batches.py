"""Evaluation batches are length-sorted and token-bounded: long inputs get smaller batches, every
text is scored once, and the scores do not depend on the batching."""
from __future__ import annotations

import numpy as np
import torch

import effx
from effx.config import AttentionSpec, ModelConfig, PositionalSpec
from effx.data import eval_batches
from effx.eval.inference import predict_proba


def test_short_texts_keep_full_batches_in_length_order():
    lengths = [30, 5, 120, 64, 7, 88, 12, 3, 50, 128]
    batches = eval_batches(lengths, batch_size=4)
    assert batches == [[7, 1, 4, 6], [0, 8, 3, 5], [2, 9]]  # np.argsort(lengths) cut in fours


def test_long_texts_get_batches_within_the_token_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 8192, size=500).tolist()
    batches = eval_batches(lengths, batch_size=64)
    assert sorted(i for b in batches for i in b) == list(range(500))  # each text exactly once
    for b in batches:
        assert len(b) <= 64 and len(b) * max(lengths[i] for i in b) <= 64 * 512
    assert [len(b) for b in batches][-1] <= 4  # the longest texts: 4 per batch at most (64 x 512 / 8192)
    longest = [max(lengths[i] for i in b) for b in batches]
    assert longest == sorted(longest)
    assert eval_batches([5000, 9000], batch_size=8, max_tokens=4096) == [[0], [1]]  # over budget: alone


def test_scores_do_not_depend_on_the_batching():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=2048,
                      attention=AttentionSpec("sdpa", {}), positional=PositionalSpec("learned"))
    model = effx.build_model(cfg, {"type": "classification", "num_classes": 3})
    rng = np.random.default_rng(1)
    ids = [list(rng.integers(5, 300, size=int(n))) for n in rng.integers(100, 2000, size=12)]
    one = predict_proba(model, ids, 3, batch_size=1, device="cpu")
    batched = predict_proba(model, ids, 3, batch_size=8, device="cpu")  # budget 4,096 tokens: 2-8 per batch
    np.testing.assert_allclose(batched.probs, one.probs, rtol=0, atol=1e-5)
    assert batched.tokens == one.tokens == sum(len(s) for s in ids)
