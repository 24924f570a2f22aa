"""Inference throughput on real texts: effx's prediction path vs HF BertForSequenceClassification.

    PYTHONPATH=/path/to/transformers-site python benchmarks/predict_hf_ab.py --data test.parquet --out docs/bench/predict-hf-ab.md

Both models have the step bench's sizes (4 layers, d 256, 4 heads, d_ff 1024, vocab 8000, random
weights: speed does not depend on them) and learned absolute positions, as BERT has. The texts are tokenized once (WordPiece trained on them,
truncated to ``--max-length``) and cut into the length-sorted batches ``effx predict`` uses; effx
runs them through :func:`effx.eval.inference.predict_proba` (real tokens only), HF through its
forward with the padded batch and its attention mask, batch by batch alternating, in fp32 and in
bf16 autocast. texts/s and tokens/s (real tokens) over the summed forward time.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    import effx
    from effx.bench.tokens import TokenSettings, real_ids
    from effx.config import ModelConfig, PositionalSpec
    from effx.data import PadCollator
    from effx.eval.inference import predict_proba

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    ids, stats = real_ids(TokenSettings(data=args.data, max_length=args.max_length, texts=args.texts))
    cfg = ModelConfig(vocab_size=stats["vocab"], d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_seq_len=args.max_length,
                      positional=PositionalSpec("learned"))  # learned absolute positions, as BERT has
    mine = effx.build_model(cfg, {"type": "classification", "num_classes": 4}).eval()
    hf = BertForSequenceClassification(BertConfig(
        vocab_size=stats["vocab"], hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=max(512, args.max_length), num_labels=4, attn_implementation="sdpa")).eval()
    order = np.argsort([len(s) for s in ids], kind="stable")
    chunks = [[ids[i] for i in order[s:s + args.batch]] for s in range(0, len(order), args.batch)]
    collate = PadCollator()
    rows = []
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        sec = {"effx": 0.0, "hf": 0.0}
        for rep in range(2):  # the first pass warms both up and is not counted
            for i, chunk in enumerate(chunks):
                batch = collate([{"input_ids": x, "label": -1, "idx": j} for j, x in enumerate(chunk)])
                for who in (("effx", "hf") if i % 2 == 0 else ("hf", "effx")):
                    if who == "effx":
                        s = predict_proba(mine, chunk, 4, len(chunk), torch.device("cpu"), dtype).seconds
                    else:
                        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                            t0 = time.perf_counter()
                            hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()).logits.float()
                            s = time.perf_counter() - t0
                    if rep:
                        sec[who] += s
        real = sum(len(x) for x in ids)
        rows.append((name, {k: (len(ids) / v, real / v) for k, v in sec.items()}))
    load1 = os.getloadavg()
    lines = ["# Inference on real texts: effx prediction path vs HF forward", "",
             f"Command: `python benchmarks/predict_hf_ab.py --data {args.data} --out {args.out} --texts {args.texts} "
             f"--max-length {args.max_length} --batch {args.batch} --threads {args.threads}` (transformers "
             f"{transformers.__version__}, torch {torch.__version__}); load average at start "
             f"{tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)} (a shared 2-core machine).",
             "", f"{len(ids)} texts, mean length {stats['mean_len']:.1f} tokens (max {args.max_length}), length-sorted "
             f"batches of {args.batch}; effx and HF alternate batch by batch; second pass timed.", "",
             "| dtype | effx texts/s | HF texts/s | effx tokens/s | HF tokens/s | effx/HF |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['effx'][0]:,.0f} | {r['hf'][0]:,.0f} | {r['effx'][1]:,.0f} | {r['hf'][1]:,.0f} | "
                     f"{r['effx'][0] / r['hf'][0]:.2f}x |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({  # the same figures for benchmarks/cost_tables.py
        "command": lines[2].split("`")[1], "transformers": transformers.__version__, "torch": torch.__version__,
        "load_start": load0, "load_end": load1, "lengths": stats, "max_length": args.max_length, "batch": args.batch,
        "rows": [{"dtype": n, **{f"{k}_{u}": v[i] for k, v in r.items() for i, u in enumerate(("texts_per_s",
                                                                                              "tokens_per_s"))}}
                 for n, r in rows]}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
