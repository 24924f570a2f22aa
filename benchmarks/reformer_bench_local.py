"""Local A/B timing of the Reformer attention layer against reformer-pytorch and fused sdpa.

Each (implementation, N) runs in a fresh subprocess: forward+backward of the attention layer alone
(B=1, 4 heads x 64, fp32, shared-QK, bucket_size 64, n_hashes 4), median of ``--reps`` timed steps
after one warm-up, and the extra peak resident memory (``ru_maxrss`` minus the RSS before the first
step). The peer needs ``pip install reformer-pytorch==1.4.4`` (never a dependency of effx).

    python benchmarks/reformer_bench_local.py --n 4096 16384 --impl reformer_lsh peer sdpa

The project-wide benchmark is ``effx bench``; this script only checks the speed targets quickly.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def _make_layer(impl: str, heads: int, dh: int, n: int):
    import torch

    if impl == "peer":
        from reformer_pytorch.reformer_pytorch import LSHAttention

        att = LSHAttention(bucket_size=64, n_hashes=4, causal=False).train()
        return lambda q, k, v: att(q.flatten(0, 1), v.flatten(0, 1))[0]
    if impl == "sdpa":
        return lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v)
    import effx

    cls = effx.load_registry().get("attention", impl).cls
    att = cls(cls.Config(), effx.AttentionContext(heads, dh, max(n, 512), seed=0)).train()
    return lambda q, k, v: att(q, k, v)


def run_one(impl: str, n: int, reps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    heads, dh = 4, 64
    q, k, v = (torch.randn(1, heads, n, dh, requires_grad=True) for _ in range(3))
    layer = _make_layer(impl, heads, dh, n)
    rss0 = _rss_kib()
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        layer(q, k, v).sum().backward()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    return {"impl": impl, "n": n, "fwd_bwd_s": statistics.median(times[1:]), "extra_peak_MiB": peak / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--impl", nargs="+", default=["reformer_lsh", "reformer_balanced", "peer", "sdpa"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.impl[0], args.n[0], args.reps, args.threads)))
        return
    rows = []
    for n in args.n:
        for impl in args.impl:
            cmd = [sys.executable, __file__, "--one", "--impl", impl, "--n", str(n), "--reps", str(args.reps),
                   "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{impl} N={n}: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{impl:>18} N={n:>6}  fwd+bwd {row['fwd_bwd_s']:.3f} s  extra peak {row['extra_peak_MiB']:.0f} MiB",
                  flush=True)
    for n in args.n:
        by = {r["impl"]: r for r in rows if r["n"] == n}
        for ours in ("reformer_lsh", "reformer_balanced"):
            for peer in ("peer", "sdpa"):
                if ours in by and peer in by:
                    print(f"N={n}: {peer} / {ours} time ratio = {by[peer]['fwd_bwd_s'] / by[ours]['fwd_bwd_s']:.2f}x; "
                          f"peak {by[ours]['extra_peak_MiB']:.0f} vs {by[peer]['extra_peak_MiB']:.0f} MiB")


if __name__ == "__main__":
    main()
