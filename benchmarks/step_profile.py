"""Where a training step's time goes: effx vs HF BertForSequenceClassification, op by op.

    PYTHONPATH=/path/to/transformers-site python benchmarks/step_profile.py --out docs/bench/cost/hf-step/profile.md

Builds the two workloads of ``benchmarks/hf_peer_ab.py`` (same sizes, dropouts, fused AdamW) and
records ``--steps`` training steps of each under ``torch.profiler`` (CPU, self time per op, so an op
that calls others is not counted twice), then sums the ops into categories: the dense matmuls both
models share (``mm``/``addmm``/``bmm``), the attention kernel, layer norm, GELU, dropout, softmax,
embedding, dtype casts, the optimizer and the rest. A category that costs both the same bounds the
ratio of their steps (Amdahl): this is the table behind "effx step / HF step" in docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

# first match wins; patterns are searched in the aten op name
CATEGORIES = (
    ("matmul (mm, addmm, bmm)", r"^aten::(mm|addmm|bmm|baddbmm|addbmm)$"),
    ("attention kernel", r"scaled_dot_product|flash_attention|_efficient_attention|_fused_sdp"),
    ("softmax", r"softmax"),
    ("layer norm", r"layer_norm"),
    ("GELU", r"gelu"),
    ("dropout", r"dropout|bernoulli"),
    ("embedding", r"embedding|index_select|index_add"),
    ("dtype casts and copies", r"^aten::(copy_|_to_copy|to|clone|contiguous)$"),
    ("optimizer", r"adam|_foreach"),
    ("elementwise (add, mul, ...)", r"^aten::(add|add_|mul|mul_|sub|div|div_|fill_|zero_|where|masked_fill|tanh|sum|mean)$"),
)


def category(name: str) -> str:
    for label, pattern in CATEGORIES:
        if re.search(pattern, name):
            return label
    return "other"


def profile_steps(step, steps: int) -> dict[str, float]:
    """ms per step of each category: self CPU time of every op, summed, over ``steps`` steps."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    out: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        out[category(ev.key)] += ev.self_cpu_time_total / 1000 / steps  # us -> ms per step
    return dict(out)


def cell(n: int, batch: int, dtype: str, steps: int) -> dict:
    from hf_peer_ab import workloads

    works = workloads(n, batch, dtype)
    for w in works.values():  # warm-up
        w.train_step()
        w.train_step()
    return {"n": n, "batch": batch, "dtype": dtype, **{k: profile_steps(w.train_step, steps) for k, w in works.items()}}


def table(row: dict) -> list[str]:
    labels = [c[0] for c in CATEGORIES] + ["other"]
    tot = {k: sum(row[k].values()) for k in ("effx", "hf")}
    lines = [f"#### {row['dtype']}, N={row['n']} x batch {row['batch']}: step {tot['effx']:.0f} ms (effx) vs "
             f"{tot['hf']:.0f} ms (HF) of profiled op time, HF / effx {tot['hf'] / tot['effx']:.2f}x", "",
             "| category | effx ms | share | HF ms | share | HF - effx ms |", "|---|---:|---:|---:|---:|---:|"]
    for lab in labels:
        e, h = row["effx"].get(lab, 0.0), row["hf"].get(lab, 0.0)
        lines.append(f"| {lab} | {e:.1f} | {e / tot['effx']:.0%} | {h:.1f} | {h / tot['hf']:.0%} | {h - e:+.1f} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import transformers

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = [cell(n, b, dt, args.steps) for dt in ("fp32", "bf16") for n, b in ((128, 32), (512, 8))]
    load1 = os.getloadavg()
    head = ["# Where a training step's time goes: effx vs HF BertForSequenceClassification", "",
            f"Command: `python benchmarks/step_profile.py --out {args.out} --steps {args.steps} --threads "
            f"{args.threads}` (transformers {transformers.__version__}, torch {torch.__version__}); load average "
            f"at start {tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)}.", "",
            "Self CPU time per op under torch.profiler, summed per category, ms per training step (forward + "
            "backward + fused AdamW); profiler overhead included, so totals exceed the unprofiled step times.", ""]
    lines = head + [line for r in rows for line in table(r)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({"command": head[2].split("`")[1], "rows": rows,
                                                         "load_start": load0, "load_end": load1}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
