"""Forward+backward time of the Performer layer, this checkout against other copies of the plugin,
interleaved call by call in ONE process, plus the machine's fp32 matmul roofline measured in the
same run and the fraction of it the layer reaches::

    python benchmarks/performer_ab_timing.py --n 4096 16384 --ref OLD=/path/to/plugin_dir

``--ref NAME=DIR``: DIR holds an ``effx_performer`` package (e.g. an older commit unpacked with
``git archive``). Matmul FLOPs of one fwd+bwd (FAVOR+/FAVOR++, B=1, H heads, head size d, M
features, E = d + 1): forward ``2 N M (2 d + 2 E)``, backward ``2 N M (4 d + 4 E)`` per head.
Time is the minimum over repetitions (median shown too); quote ratios from one run only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

import effx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from performer_correctness_figures import load  # noqa: E402

B, H, DH, M = 1, 4, 64, 256


def matmul_flops(n: int, d: int = DH, m: int = M, heads: int = H) -> float:
    e = d + 1
    return heads * 2 * n * m * 6 * (d + e)


def roofline_gflops(reps: int = 5) -> float:
    from effx.bench.roofline import matmul_gflops

    return matmul_gflops(2048, "fp32", "cpu", reps=reps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[4096, 16384])
    p.add_argument("--ref", action="append", default=[], help="NAME=DIR of another plugin copy")
    p.add_argument("--types", nargs="+", default=["performer_favor", "performer_favor_pp"])
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "attention_performer")
    pkgs = {"this": load(os.path.abspath(here), "effx_performer_this")}
    for spec in a.ref:
        name, path = spec.split("=", 1)
        pkgs[name] = load(os.path.abspath(path), f"effx_performer_{name}")
    for n in a.n:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, H, n, DH, generator=g).requires_grad_() for _ in range(3))
        fns = {}
        for tname in a.types:
            for pname, pkg in pkgs.items():
                cls = pkg.PerformerAttention if tname == "performer_favor" else pkg.PerformerPlusPlusAttention
                fns[f"{tname}[{pname}]"] = cls(cls.Config(nb_features=M), effx.AttentionContext(H, DH, 1 << 20)).train()
        times = {key: [] for key in fns}
        roof = []
        for rep in range(a.reps + 1):
            roof.append(roofline_gflops(reps=2))
            for key, mod in fns.items():
                t0 = time.perf_counter()
                mod(q, k, v).sum().backward()
                if rep:
                    times[key].append(time.perf_counter() - t0)
                q.grad = k.grad = v.grad = None
        peak = max(roof)
        print(f"N={n}: fp32 matmul roofline (2048^3, best in run) {peak:.1f} GFLOP/s; "
              f"layer matmul work {matmul_flops(n) / 1e9:.2f} GFLOP", flush=True)
        for key, ts in times.items():
            best = min(ts)
            print(f"  {key:34s} min {best * 1e3:8.1f} ms  median {statistics.median(ts) * 1e3:8.1f} ms  "
                  f"{matmul_flops(n) / best / 1e9:6.1f} GFLOP/s = {100 * matmul_flops(n) / best / 1e9 / peak:5.1f} % "
                  "of roofline", flush=True)


if __name__ == "__main__":
    main()
