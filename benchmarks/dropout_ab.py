"""A/B of the two dropout changes behind the encoder step figure of docs/BENCHMARKS.md.

1. Mask generation for the d_ff-wide activation of one step (32 x 512 x 1024 keep decisions):
   ``effx.model.dropout.keep_mask`` (int64 draws, four 16-bit lanes) against the previous
   two-lane int32 version (kept here, inline, as the reference) and ``torch.bernoulli_``.
2. One encoder training step (4 layers, d_model 256, d_ff 1024, batch 32 x 512 tokens, fused sdpa,
   fp32, AdamW) with ``model.activation_dropout`` 0.0 (the default, as BERT / RoBERTa) and 0.1 (the
   old behaviour), the two models alternating in one process so load drifts hit both alike.

    python benchmarks/dropout_ab.py --out docs/bench/cpu-dropout-ab.md [--reps 7]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import effx
from effx.config import AttentionSpec, ModelConfig
from effx.model.dropout import keep_mask

P = 0.1


def keep_mask_int32_two_lanes(n: int, p: float) -> torch.Tensor:
    """The previous mask: int32 draws (uniform on [0, 2^31)) split into two 16-bit lanes."""
    pairs = torch.empty((n + 1) // 2, dtype=torch.int32).random_()  # (ceil(n/2),)
    lanes = pairs.view(torch.int16).view(-1, 2)  # (ceil(n/2), 2)
    thr = torch.tensor([round(p * 65536) - 32768, round(p * 32768)], dtype=torch.int16)
    return (lanes >= thr).view(-1)[:n]


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def mask_rows(reps: int) -> list[tuple[str, float]]:
    shape = torch.Size((32, 512, 1024))
    n = shape.numel()
    buf = torch.empty(n)
    return [
        ("keep_mask: int64 draws, 4 lanes (effx)", median_ms(lambda: keep_mask(shape, P, torch.device("cpu")), reps)),
        ("int32 draws, 2 lanes (previous effx)", median_ms(lambda: keep_mask_int32_two_lanes(n, P), reps)),
        ("torch bernoulli_ (F.dropout on CPU)", median_ms(lambda: buf.bernoulli_(1 - P), reps)),
    ]


def step_fn(activation_dropout: float):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=8000, d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_seq_len=512,
                      activation_dropout=activation_dropout, attention=AttentionSpec("sdpa", {"impl": "fused"}))
    model = effx.build_model(cfg, {"type": "classification", "num_classes": 2}).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 8000, (32, 512), generator=gen)  # (B, N)
    labels = torch.randint(0, 2, (32,), generator=gen)  # (B,)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(ids), labels).backward()
        opt.step()

    return step


def step_rows(reps: int) -> list[tuple[str, float]]:
    steps = {p: step_fn(p) for p in (0.0, 0.1)}
    times: dict[float, list[float]] = {p: [] for p in steps}
    for fn in steps.values():
        fn()  # warm-up
    for _ in range(reps):
        for p, fn in steps.items():  # alternate
            t0 = time.perf_counter()
            fn()
            times[p].append(time.perf_counter() - t0)
    return [(f"training step, activation_dropout={p}", 1000 * statistics.median(t)) for p, t in times.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    masks, steps = mask_rows(args.reps), step_rows(args.reps)
    lines = [f"# Dropout A/B (`python benchmarks/dropout_ab.py --out {args.out} --reps {args.reps}`)", "",
             f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, median of {args.reps}.", "",
             "| what | ms |", "| --- | ---: |"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in masks + steps]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
