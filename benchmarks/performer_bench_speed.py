"""Forward+backward time and peak memory of the Performer attention layer against its peers.

Time: for each N all implementations run in ONE process, interleaved call by call, and the
minimum over repetitions is reported (robust to other jobs on a shared machine; ratios come from
the same run). Memory: each (implementation, N) runs in a fresh subprocess; after the inputs are built the
kernel's peak-RSS mark is reset (``/proc/self/clear_refs``) and "extra peak" = VmHWM after a
warm-up and 2 timed steps minus the resident size at that point (glibc default allocator)::

    python benchmarks/performer_bench_speed.py --n 16384 --impls performer_favor performer_pytorch sdpa

Append ``+relbias`` to ``performer_favor``/``performer_favor_pp``/``sdpa`` to add a relative-position
bias table (Performer: FFT path; sdpa: dense bias).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

B, H, DH, M = 1, 4, 64, 256


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0), so the peak we
    read belongs to this configuration and not to e.g. the import of torch."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_MiB() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(impl: str, n: int = 0, rel: bool = False):
    import torch
    import torch.nn.functional as F

    if impl.endswith("+relbias"):  # with a random [H, 2N-1] relative-bias table
        import effx

        inner = build(impl[: -len("+relbias")], n, rel=True)
        table = torch.randn(H, 2 * n - 1, generator=torch.Generator().manual_seed(1))
        return lambda q, k, v: inner(q, k, v, rel_bias=effx.RelativeBias(table, n))
    if impl in ("performer_favor", "performer_favor_pp"):
        import effx
        from effx_performer import PerformerAttention, PerformerPlusPlusAttention

        cls = PerformerAttention if impl == "performer_favor" else PerformerPlusPlusAttention
        mod = cls(cls.Config(nb_features=M), effx.AttentionContext(H, DH, 1 << 20)).train()
        return lambda q, k, v, **kw: mod(q, k, v, **kw)
    if impl == "performer_pytorch":
        from performer_pytorch import FastAttention

        mod = FastAttention(dim_heads=DH, nb_features=M, causal=False).train()
        return lambda q, k, v: mod(q, k, v)
    if impl == "sdpa" and rel:
        import effx
        from effx_sdpa.sdpa import SDPAttention

        mod = SDPAttention(SDPAttention.Config(), effx.AttentionContext(H, DH, 1 << 20)).train()
        return lambda q, k, v, **kw: mod(q, k, v, **kw)
    if impl == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
    raise SystemExit(f"unknown impl {impl}")


def interleaved_times(impls: list[str], n: int, reps: int) -> dict[str, list[float]]:
    """fwd+bwd seconds per call, implementations alternating so load spikes hit all alike."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    fns = {impl: build(impl, n) for impl in impls}
    q, k, v = (torch.randn(B, H, n, DH, requires_grad=True) for _ in range(3))
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for rep in range(reps + 1):
        for impl, fn in fns.items():
            t0 = time.perf_counter()
            fn(q, k, v).sum().backward()
            if rep:  # rep 0 is warm-up
                times[impl].append(time.perf_counter() - t0)
            q.grad = k.grad = v.grad = None
    return times


def child(impl: str, n: int, reps: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    fn = build(impl, n)
    q, k, v = (torch.randn(B, H, n, DH, requires_grad=True) for _ in range(3))
    reset_peak()
    base = rss_mib()  # inputs built; everything above this is the configuration's own memory
    fn(q, k, v).sum().backward()  # warm-up (allocator, lazy init)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(q, k, v).sum().backward()
        times.append(time.perf_counter() - t0)
    peak = peak_MiB()
    return {"impl": impl, "n": n, "median_s": statistics.median(times), "min_s": min(times),
            "extra_peak_MiB": peak - base}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, nargs="+", default=[16384])
    p.add_argument("--impls", nargs="+", default=["performer_favor", "performer_pytorch", "sdpa"])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--child", nargs=2)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.reps)))
        return
    for n in a.n:
        times = interleaved_times(a.impls, n, a.reps)
        rows = {}
        for impl in a.impls:
            out = subprocess.run([sys.executable, __file__, "--child", impl, str(n), "--reps", "2"],
                                 capture_output=True, text=True, check=True)
            rows[impl] = json.loads(out.stdout.strip().splitlines()[-1])
            rows[impl]["min_s"], rows[impl]["median_s"] = min(times[impl]), statistics.median(times[impl])
            r = rows[impl]
            print(f"N={n:6d} {impl:20s} fwd+bwd min {r['min_s']*1e3:8.1f} ms  median {r['median_s']*1e3:8.1f} ms  "
                  f"extra peak {r['extra_peak_MiB']:7.1f} MiB", flush=True)
        ref = rows[a.impls[0]]
        for impl, r in rows.items():
            if impl != a.impls[0]:
                print(f"N={n:6d} {a.impls[0]} vs {impl}: {r['min_s']/ref['min_s']:.2f}x faster (min), "
                      f"{r['median_s']/ref['median_s']:.2f}x (median); peak memory ratio "
                      f"{ref['extra_peak_MiB']/max(r['extra_peak_MiB'], 1e-9):.2f}", flush=True)


if __name__ == "__main__":
    main()
