"""effx vs HF transformers BertForSequenceClassification (sdpa), interleaved in one process.

    PYTHONPATH=/path/to/transformers-site python benchmarks/hf_peer_ab.py --out docs/bench/hf-peer-ab.md

The step bench (``effx bench --mode step`` with transformers installed) runs every row in its own
process one after the other, so on a shared machine a change of load between rows moves the ratio.
This script builds both workloads of :mod:`effx.bench.workloads` (same sizes, dropouts and fused
AdamW) in one process and alternates them run by run: the ratio of medians is then measured under
the same load. effx uses learned absolute positions like BERT (the product's default is a relative
bias, which is more work than BERT does). Cells: fp32 and bf16, N=128 x batch 32 and N=512 x batch 8; forward (no_grad) and
training step (forward + backward + AdamW).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def spec(n: int, batch: int, dtype: str, source: str) -> dict:
    from effx.bench.plan import base_spec
    from effx.bench.settings import BenchSettings

    # learned absolute positions, as BERT has: both models then do the same work
    return {**base_spec(BenchSettings(dtype=dtype, positional="learned")), "suite": "step", "n": n, "batch": batch, "heads": 4,
            "head_dim": 64, "type": "sdpa", "config": {"impl": "fused"}, "source": source, "label": source}


def workloads(n: int, batch: int, dtype: str) -> dict:
    """``{"effx": ..., "hf": ...}``: the two step workloads of one cell."""
    from effx.bench.workloads import HFStepWorkload, StepWorkload

    return {"effx": StepWorkload(spec(n, batch, dtype, "effx")), "hf": HFStepWorkload(spec(n, batch, dtype, "peer"))}


def cell(n: int, batch: int, dtype: str, reps: int) -> dict:
    works = workloads(n, batch, dtype)
    for w in works.values():  # warm-up
        w.forward()
        w.train_step()
    times = {(k, what): [] for k in works for what in ("fwd", "step")}
    for r in range(reps):
        for k in (works if r % 2 == 0 else reversed(list(works))):
            for what, fn in (("fwd", works[k].forward), ("step", works[k].train_step)):
                t0 = time.perf_counter()
                fn()
                times[(k, what)].append(time.perf_counter() - t0)
    med = {key: statistics.median(v) * 1000 for key, v in times.items()}
    return {"n": n, "batch": batch, "dtype": dtype, **{f"{k}_{w}_ms": v for (k, w), v in med.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import os

    import transformers

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = [cell(n, b, dt, args.reps) for dt in ("fp32", "bf16") for n, b in ((128, 32), (512, 8))]
    load1 = os.getloadavg()
    lines = ["# effx vs HF BertForSequenceClassification (sdpa), interleaved in one process", "",
             f"Command: `python benchmarks/hf_peer_ab.py --out {args.out} --reps {args.reps} --threads {args.threads}` "
             f"(transformers {transformers.__version__}, torch {torch.__version__}, {args.threads} thread(s)); "
             f"load average at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)} "
             "(a shared 2-core machine).", "",
             "Both: 4 layers, d 256, 4 heads, d_ff 1024, vocab 8000, hidden dropout 0.1, attention dropout 0, "
             "fused AdamW; median of the runs, effx and HF alternating run by run.", "",
             "| dtype | N x B | effx fwd ms | HF fwd ms | fwd tokens/s effx/HF | effx step ms | HF step ms | "
             "step tokens/s effx/HF |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['n']} x {r['batch']} | {r['effx_fwd_ms']:.0f} | {r['hf_fwd_ms']:.0f} | "
                     f"{r['hf_fwd_ms'] / r['effx_fwd_ms']:.2f}x | {r['effx_step_ms']:.0f} | {r['hf_step_ms']:.0f} | "
                     f"{r['hf_step_ms'] / r['effx_step_ms']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({  # the same figures for benchmarks/cost_tables.py
        "command": lines[2].split("`")[1], "transformers": transformers.__version__, "torch": torch.__version__,
        "threads": args.threads, "reps": args.reps, "load_start": load0, "load_end": load1, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
