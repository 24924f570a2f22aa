"""The padding benchmark's measuring parts, in-process on a tiny model (the figures live in docs/)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import padding_bench as pb  # noqa: E402  (a lab script, not part of the package)


@pytest.fixture()
def setup():
    info = {"ids": [[2, *range(10, 10 + n), 3] for n in (3, 30, 7, 12, 5, 9)], "labels": [0, 1, 0, 1, 0, 1],
            "num_classes": 2, "vocab_size": 64, "truncated": 0}
    return info


def run(mode: str, info: dict):
    args = pb.parse_args(["--out", "x.md", "--max-length", "64", "--batch-size", "3", "--d-model", "32",
                          "--worker", mode])
    model, opt = pb.build(args, info, torch.device("cpu"))
    acts = pb.SavedActivations(model)
    tokens, real, loss = pb.train_epoch(model, opt, pb.make_loader(args, info), torch.device("cpu"), acts)
    return tokens, real, loss, acts.peak


def test_static_processes_max_length_tokens_and_saves_more_activations(setup):
    d_tokens, d_real, d_loss, d_peak = run("dynamic", setup)
    s_tokens, s_real, s_loss, s_peak = run("static", setup)
    assert s_tokens == 6 * 64 and d_real == s_real == sum(len(x) for x in setup["ids"])
    assert d_tokens < s_tokens and d_tokens >= max(len(x) for x in setup["ids"]) * 3
    assert d_loss == pytest.approx(s_loss, abs=1e-5)  # padding is masked out: same batches, same loss
    assert 0 < d_peak < s_peak


def test_bucketed_batches_pad_less(setup):
    d_tokens, *_ = run("dynamic", setup)
    b_tokens, b_real, *_ = run("bucketed", setup)
    assert b_real == sum(len(x) for x in setup["ids"])
    assert b_tokens == 3 * 9 + 3 * 32  # sorted by length: (5, 7, 9) and (11, 14, 32)
