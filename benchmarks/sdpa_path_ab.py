"""Which exact-attention path is faster on this CPU: torch's fused kernel or two matmuls and a softmax.

    python benchmarks/sdpa_path_ab.py --out docs/bench/cpu-sdpa-path.md --threads 2

The measurement behind the ``sdpa`` plugin's ``impl: auto`` rule. For fp32 and bf16, N from 128 to
2048 at 4,096 tokens per call (batch 4096 / N), 4 heads x 64, with and without a key padding mask
(lengths N/2..N), it times forward + backward of ``F.scaled_dot_product_attention`` and of the
plugin's explicit path, alternating call by call, median of ``--reps``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from effx_sdpa.sdpa import auto_path, explicit_attention


def timed(fn, grad: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn().backward(grad)
    return time.perf_counter() - t0


def cell(dtype: torch.dtype, n: int, masked: bool, reps: int) -> dict:
    b = max(1, 4096 // n)
    gen = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(b, 4, n, 64, generator=gen, dtype=dtype).requires_grad_() for _ in range(3))
    grad = torch.randn(b, 4, n, 64, generator=gen, dtype=dtype)
    mask = None
    if masked:
        lens = torch.randint(n // 2, n + 1, (b,), generator=gen)
        mask = (torch.arange(n)[None, :] < lens[:, None])[:, None, None, :]  # (B, 1, 1, N)
    paths = {"fused": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
             "explicit": lambda: explicit_attention(q, k, v, mask, None, 0.0, False)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(reps + 1):  # the first round warms up
        for name in (paths if r % 2 == 0 else reversed(list(paths))):
            t = timed(paths[name], grad)
            if r:
                times[name].append(t)
    med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, "batch": b, "mask": masked, **med,
            "auto": auto_path(q, 512)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = [cell(dt, n, m, args.reps) for dt in (torch.float32, torch.bfloat16) for n in (128, 256, 512, 1024, 2048)
            for m in (False, True)]
    load1 = os.getloadavg()
    lines = ["# Exact attention on CPU: fused kernel vs explicit matmul + softmax", "",
             f"Command: `python benchmarks/sdpa_path_ab.py --out {args.out} --reps {args.reps} --threads {args.threads}` "
             f"(torch {torch.__version__}, {args.threads} thread(s)); load average at start "
             f"{tuple(round(x, 2) for x in load0)}, at end {tuple(round(x, 2) for x in load1)}.", "",
             "Forward + backward of one attention call, 4 heads x 64, 4,096 tokens per call; median of the runs, "
             "the two paths alternating. `auto` = the path the plugin's default takes.", "",
             "| dtype | N x B | padding mask | fused ms | explicit ms | fused / explicit | auto takes |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['n']} x {r['batch']} | {'yes' if r['mask'] else 'no'} | {r['fused']:.1f} | "
                     f"{r['explicit']:.1f} | {r['fused'] / r['explicit']:.2f} | {r['auto']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
