"""MLM training step: vocabulary projection at every position vs at the masked positions only.

Builds the pretraining template's model (core/templates/pretrain.yaml), trains its tokenizer on the
shipped AG News sample, and times full training steps (forward, loss, backward, AdamW) on the same
masked batches, alternating the two variants round by round in one process so both see the same
machine load. Prints tokens/s (non-padding tokens) of each and their ratio.

    nice -n 10 python benchmarks/mlm_head_ab.py [--rounds 5] [--steps 4] [--threads 1]
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import effx
from effx.config import MLMConfig, TokenizerConfig, load_yaml, structure
from effx.config import ModelConfig
from effx.data import IGNORE_INDEX, MLMCollator, encode, train_tokenizer
from effx.train.task import MLMTask

REPO = Path(__file__).resolve().parents[1]


def full_loss(model, batch) -> torch.Tensor:
    logits = model(batch["input_ids"], batch["attention_mask"])  # (B, N, V)
    return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX,
                           reduction="sum")


def masked_loss(model, batch) -> torch.Tensor:
    logits = model(batch["input_ids"], batch["attention_mask"], **MLMTask.forward_kwargs(batch))  # (M, V)
    return MLMTask.loss(logits, batch)[0]


def timed_steps(model, opt, batches, loss_fn) -> tuple[float, float]:
    """(seconds, non-padding tokens) over ``batches``, one optimizer step each."""
    tokens, start = 0.0, time.perf_counter()
    for batch in batches:
        loss = loss_fn(model, batch) / (batch["labels"] != IGNORE_INDEX).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += float(batch["attention_mask"].sum())
    return time.perf_counter() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="training steps per variant per round")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tpl = load_yaml(REPO / "core/templates/pretrain.yaml")
    cfg = structure(tpl["model"], ModelConfig, effx.load_registry(), root="model")
    batch_size, max_len = tpl["train"]["batch_size"], tpl["data"]["max_length"]
    with open(REPO / "core/data/sample/agnews_train.csv", newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    tok = train_tokenizer(texts, structure(tpl["tokenizer"], TokenizerConfig))
    ids = encode(tok, texts, max_len)
    coll = MLMCollator(cfg.vocab_size, MLMConfig(), seed=0)
    n = args.steps * batch_size
    batches = [coll([{"input_ids": ids[j], "idx": j} for j in range(i, i + batch_size)]) for i in range(0, n, batch_size)]
    torch.manual_seed(0)
    model = effx.build_model(cfg, "mlm").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    timed_steps(model, opt, batches[:1], full_loss)  # warm-up
    timed_steps(model, opt, batches[:1], masked_loss)
    sums = {"full": [0.0, 0.0], "masked": [0.0, 0.0]}
    for _ in range(args.rounds):
        for name, fn in (("full", full_loss), ("masked", masked_loss)):
            s, t = timed_steps(model, opt, batches, fn)
            sums[name][0] += s
            sums[name][1] += t
    rate = {k: t / s for k, (s, t) in sums.items()}
    print(f"model: d_model {cfg.d_model}, {cfg.n_layers} layers, vocab {cfg.vocab_size}, batch {batch_size}, "
          f"max_length {max_len}; {args.rounds} rounds x {args.steps} steps per variant, {torch.get_num_threads()} threads")
    for k, v in rate.items():
        print(f"{k:>7}: {v:,.0f} tokens/s ({sums[k][0]:.1f} s)")
    print(f"masked / full: {rate['masked'] / rate['full']:.2f}x")


if __name__ == "__main__":
    main()
